"""Pure: check a parsed catalog's mappings against one release's TechniqueIndex.

Folds every spelling users meet (`t1059.001`, `attack.t1059.001`, `T1550/001`, technique URLs;
`credential_access`, `Credential Access`, `TA0006`, `CredentialAccess`) and decides one outcome per
mapping: ok, remapped (revoked → end of the revoked-by chain), deprecated, unknown in this release,
wrong_domain, or unparsable. Nothing is dropped: every mapping and every rule is kept and counted.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from app.attack.service import TechniqueIndex
from app.catalog.base import ParsedCatalog, ParsedRule
from app.catalog.models import (
    OUTCOMES,
    MappingExample,
    OutcomeCounts,
    TacticMismatchExample,
    ValidationReport,
)

_TECHNIQUE = re.compile(r"(?<![A-Za-z0-9])[Tt](\d{4})(?:[./_](\d{3}))?(?!\d)")
_TACTIC_ID = re.compile(r"^TA\d{4}$", re.IGNORECASE)
EXAMPLES = 5
STIX_PREFIX = "attack-pattern--"


def fold_technique(written: str) -> tuple[str | None, str | None]:
    """'attack.t1059.001' → ('T1059.001', None); 'T1550.001@lateral-movement' pins a tactic."""
    text, _, pin = written.partition("@")
    m = _TECHNIQUE.search(text)
    if not m:
        return None, pin or None
    tid = f"T{m.group(1)}" + (f".{m.group(2)}" if m.group(2) else "")
    return tid, pin or None


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower().removeprefix("attack."))


def tactic_folder(index: TechniqueIndex) -> dict[str, str]:
    """Every accepted spelling (folded) → the release's tactic shortname."""
    out: dict[str, str] = {}
    for t in index.tactics:
        for spelling in (t.shortname, t.name, t.id or ""):
            if spelling:
                out[_key(spelling)] = t.shortname
    return out


@dataclass
class Mapping:
    written: str
    technique: str | None
    tactic: str | None
    outcome: str
    tactic_ok: bool = True
    note: str = ""


@dataclass
class ValidatedRule:
    rule: ParsedRule
    mappings: list[Mapping]
    tactics: list[str]  # the rule's own tactics, folded where the release knows them


@dataclass
class Validation:
    rules: list[ValidatedRule]
    report: ValidationReport


def validate_catalog(parsed: ParsedCatalog, index: TechniqueIndex) -> Validation:
    """Every rule with its mappings checked against `index`, and the counts of what was found."""
    folder = tactic_folder(index)
    unknown_tactics: Counter[str] = Counter()
    out = [_validate_rule(rule, index, folder, unknown_tactics) for rule in parsed.rules]
    return Validation(rules=out, report=_report(out, index, unknown_tactics))


def _validate_rule(
    rule: ParsedRule, index: TechniqueIndex, folder: dict[str, str], unknown: Counter[str]
) -> ValidatedRule:
    """Fold the rule's tactics (counting unknown ones), check each distinct mapping, and flag a
    mapping with no pin whose technique is under none of the rule's known tactics."""
    rule_tactics = []
    for t in rule.tactics:
        folded = folder.get(_key(t))
        if folded is None:
            unknown[t] += 1
        rule_tactics.append(folded or t)
    mappings = [_check(w, index, folder) for w in _unique(rule.techniques)]
    known_rule_tactics = {t for t in rule_tactics if t in folder.values()}
    for m in mappings:
        info = index.techniques.get(m.technique or "")
        if (
            info
            and m.outcome in ("ok", "remapped")
            and m.tactic is None
            and known_rule_tactics
            and not known_rule_tactics & set(info.tactics)
        ):
            m.tactic_ok = False
            m.note = (m.note + "; " if m.note else "") + (
                f"rule tactics {sorted(known_rule_tactics)} are not tactics of {info.id}"
            )
    return ValidatedRule(rule=rule, mappings=mappings, tactics=rule_tactics)


def _report(
    out: list[ValidatedRule], index: TechniqueIndex, unknown_tactics: Counter[str]
) -> ValidationReport:
    outcomes: Counter[str] = Counter()
    examples: dict[str, list[MappingExample]] = {}
    tactic_warnings: list[TacticMismatchExample] = []
    for r in out:
        for m in r.mappings:
            outcomes[m.outcome] += 1
            bucket = examples.setdefault(m.outcome, [])
            if len(bucket) < EXAMPLES:
                bucket.append(mapping_example(r.rule.rule_id, m))
            if not m.tactic_ok and len(tactic_warnings) < EXAMPLES:
                tactic_warnings.append(
                    TacticMismatchExample(rule_id=r.rule.rule_id, written=m.written, note=m.note)
                )
    placed = ("ok", "remapped")
    covered = {m.technique for r in out for m in r.mappings if m.outcome in placed and m.technique}
    return ValidationReport(
        release=f"{index.domain} {index.version}",
        rules=len(out),
        rules_with_technique=sum(1 for r in out if r.mappings),
        rules_without_technique=sum(1 for r in out if not r.mappings),
        rules_mapped=sum(1 for r in out if any(m.outcome in placed for m in r.mappings)),
        distinct_techniques_written=len(
            {w for r in out for m in r.mappings if (w := fold_technique(m.written)[0]) is not None}
        ),
        techniques_mapped=len(covered),
        distinct_techniques_covered=len(covered),
        mappings=sum(outcomes.values()),
        outcomes=outcome_counts(outcomes),
        rules_with_unknown=sum(1 for r in out if any(m.outcome == "unknown" for m in r.mappings)),
        tactic_mismatches=sum(1 for r in out for m in r.mappings if not m.tactic_ok),
        unknown_tactics=dict(unknown_tactics.most_common(20)),
        examples=examples,
        tactic_mismatch_examples=tactic_warnings,
    )


def outcome_counts(counts: Counter[str]) -> OutcomeCounts:
    return OutcomeCounts(**{k: counts.get(k, 0) for k in OUTCOMES})


def mapping_example(rule_id: str, m: Mapping) -> MappingExample:
    return MappingExample(rule_id=rule_id, written=m.written, technique=m.technique, note=m.note)


def _unique(items: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for i in items:
        seen.setdefault(i, None)
    return list(seen)


def _check(written: str, index: TechniqueIndex, folder: dict[str, str]) -> Mapping:
    if written.startswith(STIX_PREFIX):
        return _check_stix_id(written, index)
    tid, pin = fold_technique(written)
    tactic = folder.get(_key(pin)) if pin else None
    if tid is None:
        return Mapping(written, None, tactic, "unparsable", note="no technique id in it")
    info = index.techniques.get(tid)
    if info is None:
        if tid in index.other_domains:
            return Mapping(
                written,
                tid,
                tactic,
                "wrong_domain",
                note=f"{tid} is an ATT&CK {index.other_domains[tid]} technique",
            )
        return Mapping(
            written,
            tid,
            tactic,
            "unknown",
            note=f"{tid} is not in ATT&CK {index.domain} {index.version}",
        )
    m = Mapping(written, tid, tactic, "ok")
    if info.status == "revoked":
        final, chain = index.final(tid)
        end = index.techniques.get(final)
        if end is not None and end.status == "active":
            m.technique, m.outcome = final, "remapped"
            m.note = "revoked: " + " → ".join(chain)
            info = end
        else:
            m.outcome = "deprecated"
            m.note = f"revoked with no active replacement ({' → '.join(chain)})"
    elif info.status == "deprecated":
        m.outcome, m.note = "deprecated", f"{tid} is deprecated in {index.version}"
    if pin:
        if tactic is None:
            m.tactic_ok, m.note = False, _join(m.note, f"unknown tactic {pin!r}")
        elif tactic not in info.tactics:
            m.tactic_ok = False
            m.note = _join(m.note, f"{info.id} is not under {tactic} in {index.version}")
    return m


def _check_stix_id(written: str, index: TechniqueIndex) -> Mapping:
    """An attack-pattern named by STIX id only (a STIX bundle without the object): the release
    says which technique it is, as the same check would for its ATT&CK id."""
    tid = index.by_stix.get(written)
    if tid is None:
        note = f"{written} is not an attack-pattern of ATT&CK {index.domain} {index.version}"
        return Mapping(written, None, None, "unknown", note=note)
    m = _check(tid, index, {})
    m.written = written
    return m


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b
