"""Catalog upgrade: re-resolve a stored catalog's mappings against another release of its domain.

Why not re-import? The source files may be gone, and an import forgets what a mapping meant before.
An upgrade starts from what each mapping resolved to (falling back to what the catalog wrote),
follows revoked-by chains in the target release, re-checks pinned and rule tactics there, and keeps
the pre-upgrade id in `RuleTechnique.original` (the first one, across several upgrades). `written`
is never touched: it is what the catalog says. Rules are never added or removed; mappings that
cannot be placed (deprecated without replacement, unknown, another domain's id) stay, with their
outcome and a note, and are listed in the report. One transaction: all or nothing.

Export (`catalog export`) writes resolved ids, so an upgraded catalog exports with its new ids;
`original` is provenance in the database and the API (`MappingRead.original`), not in the file.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, func, update
from sqlmodel import col, select

from app.attack import service as attack_service
from app.attack.service import TechniqueIndex
from app.attack.stix import domain_of
from app.catalog import service as catalog_service
from app.catalog.base import ParsedCatalog, ParsedRule
from app.catalog.models import OUTCOMES, CatalogRead
from app.catalog.tables import Rule, RuleAnalytic, RuleTechnique
from app.catalog.validate import EXAMPLES, Mapping, fold_technique, validate_catalog
from app.core.api_model import ApiModel
from app.core.config import Settings
from app.core.db import bulk_insert, transaction
from app.core.errors import Conflict, InvalidInput

PLACED = ("ok", "remapped")


class UpgradedMapping(ApiModel):
    rule_id: str
    written: str
    before: str | None  # the technique before this upgrade
    after: str | None
    outcome: str
    note: str


class UpgradeReport(ApiModel):
    """What an upgrade did: rewritten mappings, and every mapping it could not place."""

    catalog: CatalogRead
    domain: str
    from_version: str
    to_version: str
    rules: int  # the same before and after: an upgrade never drops a rule
    mappings: int
    rewritten: int
    newly_placed: int  # mappings the old release could not place and the new one can
    outcomes: dict[str, int]
    tactic_mismatches: int
    unknown_tactics: dict[str, int]
    changed: list[UpgradedMapping]  # technique id rewritten
    not_placed: list[UpgradedMapping]  # outcome neither ok nor remapped after the upgrade


def upgrade_catalog(
    engine: Engine, settings: Settings, *, name: str, domain: str | None = None, version: str
) -> UpgradeReport:
    """Rewrite catalog `name` to ATT&CK `domain` (default: the catalog's) release `version`."""
    table = catalog_service.log_source_map(settings)
    with transaction(engine) as session:
        cat = catalog_service.get_catalog_row(session, name=name)
        target_domain = domain_of(domain) if domain else cat.domain
        if target_domain != cat.domain:
            raise InvalidInput(
                f"catalog {name!r} is validated against ATT&CK {cat.domain}; an upgrade stays in "
                f"its domain (re-import it to validate against {target_domain})"
            )
        release = attack_service.get_release(session, domain=target_domain, version=version)
        index = attack_service.technique_index(session, release=release)
        rules = list(
            session.exec(select(Rule).where(Rule.catalog_id == cat.id).order_by(col(Rule.id))).all()
        )
        rows = list(
            session.exec(
                select(RuleTechnique)
                .where(RuleTechnique.catalog_id == cat.id)
                .order_by(col(RuleTechnique.id))
            ).all()
        )
        by_rule: dict[int, list[RuleTechnique]] = defaultdict(list)
        for m in rows:
            by_rule[m.rule_pk].append(m)
        parsed = ParsedCatalog(
            format_id=cat.format_id,
            rules=[
                ParsedRule(
                    rule_id=r.rule_id,
                    techniques=[_start(m) for m in by_rule[r.id or 0]],
                    tactics=list(r.tactics),
                    log_sources=list(r.log_sources),
                )
                for r in rules
            ],
        )
        validation = validate_catalog(parsed, index)
        results = {(v.rule.rule_id, m.written): m for v in validation.rules for m in v.mappings}
        rule_ids = {r.id or 0: r.rule_id for r in rules}
        updates: list[dict[str, Any]] = []
        changed: list[UpgradedMapping] = []
        not_placed: list[UpgradedMapping] = []
        newly_placed = 0
        final: list[tuple[str, RuleTechnique, Mapping, str, str]] = []
        for m in rows:
            res = results[(rule_ids[m.rule_pk], _start(m))]
            outcome, note = _outcome(m, res, index, cat.attack_version, release.version)
            moved = res.technique != m.technique
            original = m.original or (m.technique if moved else None)
            final.append((rule_ids[m.rule_pk], m, res, outcome, note))
            new = {
                "technique": res.technique,
                "tactic": res.tactic,
                "outcome": outcome,
                "tactic_ok": res.tactic_ok,
                "note": note,
                "original": original,
            }
            if any(getattr(m, k) != v for k, v in new.items()):
                updates.append({"id": m.id, **new})
            item = UpgradedMapping(
                rule_id=rule_ids[m.rule_pk],
                written=m.written,
                before=m.technique,
                after=res.technique,
                outcome=outcome,
                note=note,
            )
            if moved:
                changed.append(item)
            if outcome not in PLACED:
                not_placed.append(item)
            elif m.outcome not in PLACED:
                newly_placed += 1
        if updates:
            session.execute(update(RuleTechnique), updates)
        analytics = catalog_service.match_analytics(session, release, validation, table)
        session.execute(delete(RuleAnalytic).where(col(RuleAnalytic.catalog_id) == cat.id))
        bulk_insert(
            session.connection(),
            "rule_analytic",
            ("catalog_id", "rule_pk", "analytic", "technique"),
            [
                (cat.id, r.id, aid, tid)
                for r, found in zip(rules, analytics, strict=True)
                for aid, tid in found
            ],
        )
        outcomes = Counter(outcome for *_, outcome, _note in final)
        mismatches = sum(1 for _r, _m, res, _o, _n in final if not res.tactic_ok)
        linked = sum(1 for found in analytics if found)
        mapped = len({res.technique for *_, res, o, _n in final if o in PLACED and res.technique})
        history = list(cat.report.get("upgrades") or [])
        history.append(
            {
                "from": f"{cat.domain} {cat.attack_version}",
                "to": f"{release.domain} {release.version}",
                "at": datetime.now(UTC).isoformat(),
                "rewritten": len(changed),
                "not_placed": len(not_placed),
            }
        )
        report = {
            **cat.report,
            "release": f"{release.domain} {release.version}",
            "rules_mapped": len({r for r, _m, _res, o, _n in final if o in PLACED}),
            "techniques_mapped": mapped,
            "distinct_techniques_covered": mapped,  # the old name of techniques_mapped
            "mappings": len(final),
            "outcomes": {k: outcomes.get(k, 0) for k in OUTCOMES},
            "rules_with_unknown": len({r for r, _m, _res, o, _n in final if o == "unknown"}),
            "tactic_mismatches": mismatches,
            "unknown_tactics": validation.report["unknown_tactics"],
            "examples": _examples(final),
            "tactic_mismatch_examples": validation.report["tactic_mismatch_examples"],
            "rules_linked_to_analytics": linked,
            "share_linked_to_analytics": round(linked / len(rules), 4) if rules else 0.0,
            "upgrades": history,
        }
        from_version = cat.attack_version
        cat.attack_version = release.version
        cat.report = report
        # coverage caches a catalog's mappings by (id, imported_at): a rewrite must move the key
        cat.imported_at = datetime.now(UTC)
        session.add(cat)
        session.flush()
        count = session.exec(
            select(func.count()).select_from(Rule).where(Rule.catalog_id == cat.id)
        ).one()
        if count != len(rules) or cat.rule_count != len(rules):
            raise Conflict(f"catalog {name!r} changed while it was upgraded; nothing was written")
        read = catalog_service.catalog_read(cat)
    return UpgradeReport(
        catalog=read,
        domain=release.domain,
        from_version=from_version,
        to_version=release.version,
        rules=len(rules),
        mappings=len(final),
        rewritten=len(changed),
        newly_placed=newly_placed,
        outcomes=report["outcomes"],
        tactic_mismatches=mismatches,
        unknown_tactics=report["unknown_tactics"],
        changed=changed,
        not_placed=not_placed,
    )


def _start(m: RuleTechnique) -> str:
    """Where an upgrade starts: the resolved id with the catalog's own tactic pin, if any."""
    if m.technique is None:
        return m.written
    pin = fold_technique(m.written)[1]
    return f"{m.technique}@{pin}" if pin else m.technique


def _outcome(
    m: RuleTechnique, res: Mapping, index: TechniqueIndex, old: str, new: str
) -> tuple[str, str]:
    """Validation's outcome, except that an id differing from the written one stays 'remapped'
    (coverage counts rules reached through a revoked id); the note says how it got there."""
    outcome = res.outcome
    parts = [f"upgraded {old} → {new}"] if res.technique != m.technique else []
    written_id = fold_technique(m.written)[0]
    if outcome == "ok" and res.technique != written_id:
        outcome = "remapped"
        if not res.note.startswith("revoked"):
            end, chain = index.final(written_id or "")
            parts.append(
                "revoked: " + " → ".join(chain)
                if end == res.technique and len(chain) > 1
                else f"{written_id} → {res.technique} (resolved in an earlier release)"
            )
    if res.note:
        parts.append(res.note)
    return outcome, "; ".join(parts)


def _examples(
    final: list[tuple[str, RuleTechnique, Mapping, str, str]],
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rule_id, m, res, outcome, note in final:
        bucket = out.setdefault(outcome, [])
        if len(bucket) < EXAMPLES:
            bucket.append(
                {"rule_id": rule_id, "written": m.written, "technique": res.technique, "note": note}
            )
    return out
