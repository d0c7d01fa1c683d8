"""Pure: check a parsed catalog's mappings against one release's TechniqueIndex.

Folds every spelling users meet (`t1059.001`, `attack.t1059.001`, `T1550/001`, technique URLs;
`credential_access`, `Credential Access`, `TA0006`, `CredentialAccess`) and decides one outcome per
mapping: ok, remapped (revoked → end of the revoked-by chain), deprecated, unknown in this release,
wrong_domain, or unparsable. Nothing is dropped: every mapping and every rule is kept and counted.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from app.attack.service import TechniqueIndex
from app.catalog.base import ParsedCatalog, ParsedRule

_TECHNIQUE = re.compile(r"(?<![A-Za-z0-9])[Tt](\d{4})(?:[./_](\d{3}))?(?!\d)")
_TACTIC_ID = re.compile(r"^TA\d{4}$", re.IGNORECASE)
EXAMPLES = 5


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
    report: dict[str, Any] = field(default_factory=dict)


def validate_catalog(parsed: ParsedCatalog, index: TechniqueIndex) -> Validation:
    folder = tactic_folder(index)
    out: list[ValidatedRule] = []
    outcomes: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = {}
    tactic_warnings: list[dict[str, Any]] = []
    unknown_tactics: Counter[str] = Counter()
    unmapped = 0
    for rule in parsed.rules:
        rule_tactics = []
        for t in rule.tactics:
            folded = folder.get(_key(t))
            if folded is None:
                unknown_tactics[t] += 1
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
            outcomes[m.outcome] += 1
            bucket = examples.setdefault(m.outcome, [])
            if len(bucket) < EXAMPLES:
                bucket.append(
                    {
                        "rule_id": rule.rule_id,
                        "written": m.written,
                        "technique": m.technique,
                        "note": m.note,
                    }
                )
            if not m.tactic_ok and len(tactic_warnings) < EXAMPLES:
                tactic_warnings.append(
                    {"rule_id": rule.rule_id, "written": m.written, "note": m.note}
                )
        if not mappings:
            unmapped += 1
        out.append(ValidatedRule(rule=rule, mappings=mappings, tactics=rule_tactics))
    covered = {
        m.technique
        for r in out
        for m in r.mappings
        if m.outcome in ("ok", "remapped") and m.technique
    }
    report = {
        "release": f"{index.domain} {index.version}",
        "rules": len(out),
        "rules_with_technique": sum(1 for r in out if r.mappings),  # naming one, any outcome
        "rules_without_technique": unmapped,
        # rules with a technique mapped to a live one of the release (ok or remapped): what the
        # coverage summary and the home page call "rules mapped"
        "rules_mapped": sum(
            1 for r in out if any(m.outcome in ("ok", "remapped") for m in r.mappings)
        ),
        "distinct_techniques_written": len(
            {w for r in out for m in r.mappings if (w := fold_technique(m.written)[0]) is not None}
        ),
        # techniques with a mapped rule, whatever its weight; coverage's "covered" is score > 0
        "techniques_mapped": len(covered),
        "distinct_techniques_covered": len(covered),  # the old name of techniques_mapped
        "mappings": sum(outcomes.values()),
        "outcomes": {
            k: outcomes.get(k, 0)
            for k in ("ok", "remapped", "deprecated", "unknown", "wrong_domain", "unparsable")
        },
        "rules_with_unknown": sum(
            1 for r in out if any(m.outcome == "unknown" for m in r.mappings)
        ),
        "tactic_mismatches": sum(1 for r in out for m in r.mappings if not m.tactic_ok),
        "unknown_tactics": dict(unknown_tactics.most_common(20)),
        "examples": examples,
        "tactic_mismatch_examples": tactic_warnings,
    }
    return Validation(rules=out, report=report)


def _unique(items: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for i in items:
        seen.setdefault(i, None)
    return list(seen)


def _check(written: str, index: TechniqueIndex, folder: dict[str, str]) -> Mapping:
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


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b
