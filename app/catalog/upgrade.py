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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, func, update
from sqlmodel import Session, col, select

from app.attack import service as attack_service
from app.attack.service import TechniqueIndex
from app.attack.stix import domain_of
from app.catalog.base import ParsedCatalog, ParsedRule
from app.catalog.catalogs import catalog_read, get_catalog_row
from app.catalog.importing import log_source_map
from app.catalog.models import (
    CatalogRead,
    ImportReport,
    MappingExample,
    UpgradeRecord,
)
from app.catalog.tables import Catalog, Rule, RuleAnalytic, RuleTechnique
from app.catalog.telemetry import LogSourceMap
from app.catalog.validate import (
    EXAMPLES,
    Mapping,
    Validation,
    fold_technique,
    outcome_counts,
    validate_catalog,
)
from app.catalog.writing import Links, insert_analytics, match_analytics
from app.core.api_model import ApiModel
from app.core.cache import caches_of
from app.core.changes import Change, changed
from app.core.config import Settings
from app.core.db import transaction
from app.core.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from app.attack.tables import Release  # annotations only: the tables are attack's

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


@dataclass
class _Loaded:
    """The stored catalog, its rules and mappings (in id order), and the target release."""

    catalog: Catalog
    release: Release
    index: TechniqueIndex
    rules: list[Rule]
    rows: list[RuleTechnique]


@dataclass
class _Placed:
    """One stored mapping with where the target release places it."""

    rule_id: str
    row: RuleTechnique
    result: Mapping
    outcome: str
    note: str


@dataclass
class _Changes:
    placed: list[_Placed] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)  # rows whose columns change
    changed: list[UpgradedMapping] = field(default_factory=list)
    not_placed: list[UpgradedMapping] = field(default_factory=list)
    newly_placed: int = 0


def upgrade_catalog(
    engine: Engine, settings: Settings, *, name: str, domain: str | None = None, version: str
) -> UpgradeReport:
    """Rewrite catalog `name` to ATT&CK `domain` (default: the catalog's) release `version`:
    load → revalidate → changes → report, written in one transaction."""
    table = log_source_map(settings)
    with transaction(engine) as session:
        loaded = _load(session, name=name, domain=domain, version=version)
        target = f"{loaded.release.domain} {loaded.release.version}"
        changed(session, Change("catalog_upgrade", loaded.release.domain, name, release=target))
        validation = _revalidate(loaded)
        changes = _changes(loaded, validation)
        analytics = _write(session, loaded, validation, changes, table)
        from_version = loaded.catalog.attack_version
        report = _report(loaded, validation, changes, analytics)
        _store(session, loaded, report)
        read = catalog_read(loaded.catalog)
    caches_of(engine).clear()
    return UpgradeReport(
        catalog=read,
        domain=loaded.release.domain,
        from_version=from_version,
        to_version=loaded.release.version,
        rules=len(loaded.rules),
        mappings=len(changes.placed),
        rewritten=len(changes.changed),
        newly_placed=changes.newly_placed,
        outcomes=report.outcomes.model_dump(),
        tactic_mismatches=report.tactic_mismatches,
        unknown_tactics=report.unknown_tactics,
        changed=changes.changed,
        not_placed=changes.not_placed,
    )


def _load(session: Session, *, name: str, domain: str | None, version: str) -> _Loaded:
    cat = get_catalog_row(session, name=name)
    target_domain = domain_of(domain) if domain else cat.domain
    if target_domain != cat.domain:
        raise InvalidInput(
            f"catalog {name!r} is validated against ATT&CK {cat.domain}; an upgrade stays in "
            f"its domain (re-import it to validate against {target_domain})"
        )
    release = attack_service.get_release(session, domain=target_domain, version=version)
    index = attack_service.technique_index(session, release=release)
    rules = session.exec(select(Rule).where(Rule.catalog_id == cat.id).order_by(col(Rule.id)))
    rows = session.exec(
        select(RuleTechnique)
        .where(RuleTechnique.catalog_id == cat.id)
        .order_by(col(RuleTechnique.id))
    )
    return _Loaded(cat, release, index, list(rules.all()), list(rows.all()))


def _revalidate(loaded: _Loaded) -> Validation:
    """Validate what each mapping resolved to (`_start`) as a catalog of its own."""
    by_rule: dict[int, list[RuleTechnique]] = defaultdict(list)
    for m in loaded.rows:
        by_rule[m.rule_pk].append(m)
    parsed = ParsedCatalog(
        format_id=loaded.catalog.format_id,
        rules=[
            ParsedRule(
                rule_id=r.rule_id,
                techniques=[_start(m) for m in by_rule[r.id or 0]],
                tactics=list(r.tactics),
                log_sources=list(r.log_sources),
            )
            for r in loaded.rules
        ],
    )
    return validate_catalog(parsed, loaded.index)


def _changes(loaded: _Loaded, validation: Validation) -> _Changes:
    """Per stored mapping: its new columns (when any differs), and whether it moved or fell out."""
    results = {(v.rule.rule_id, m.written): m for v in validation.rules for m in v.mappings}
    rule_ids = {r.id or 0: r.rule_id for r in loaded.rules}
    old, new = loaded.catalog.attack_version, loaded.release.version
    out = _Changes()
    for m in loaded.rows:
        rule_id = rule_ids[m.rule_pk]
        res = results[(rule_id, _start(m))]
        outcome, note = _outcome(m, res, loaded.index, old, new)
        moved = res.technique != m.technique
        out.placed.append(_Placed(rule_id, m, res, outcome, note))
        columns = {
            "technique": res.technique,
            "tactic": res.tactic,
            "outcome": outcome,
            "tactic_ok": res.tactic_ok,
            "note": note,
            "original": m.original or (m.technique if moved else None),
        }
        if any(getattr(m, k) != v for k, v in columns.items()):
            out.updates.append({"id": m.id, **columns})
        item = UpgradedMapping(
            rule_id=rule_id,
            written=m.written,
            before=m.technique,
            after=res.technique,
            outcome=outcome,
            note=note,
        )
        if moved:
            out.changed.append(item)
        if outcome not in PLACED:
            out.not_placed.append(item)
        elif m.outcome not in PLACED:
            out.newly_placed += 1
    return out


def _write(
    session: Session,
    loaded: _Loaded,
    validation: Validation,
    changes: _Changes,
    table: LogSourceMap,
) -> Links:
    """Update the changed mappings and relink analytics in the target release."""
    if changes.updates:
        session.execute(update(RuleTechnique), changes.updates)
    analytics = match_analytics(session, loaded.release, validation, table)
    cid = loaded.catalog.id or 0
    session.execute(delete(RuleAnalytic).where(col(RuleAnalytic.catalog_id) == cid))
    pks = [r.id or 0 for r in loaded.rules]
    insert_analytics(session.connection(), cid, pks, analytics)
    return analytics


def _report(
    loaded: _Loaded, validation: Validation, changes: _Changes, analytics: Links
) -> ImportReport:
    """The stored report with validation's counts recomputed in the target release, and this
    upgrade added to its history; what the import alone knew (format, warnings) is kept."""
    placed = changes.placed
    old = ImportReport.model_validate(loaded.catalog.report)
    mapped = len({p.result.technique for p in placed if p.outcome in PLACED and p.result.technique})
    linked = sum(1 for found in analytics if found)
    rules = len(loaded.rules)
    record = UpgradeRecord(
        from_=f"{loaded.catalog.domain} {loaded.catalog.attack_version}",
        to=f"{loaded.release.domain} {loaded.release.version}",
        at=datetime.now(UTC).isoformat(),
        rewritten=len(changes.changed),
        not_placed=len(changes.not_placed),
    )
    return old.model_copy(
        update={
            "release": f"{loaded.release.domain} {loaded.release.version}",
            "rules_mapped": len({p.rule_id for p in placed if p.outcome in PLACED}),
            "techniques_mapped": mapped,
            "distinct_techniques_covered": mapped,
            "mappings": len(placed),
            "outcomes": outcome_counts(Counter(p.outcome for p in placed)),
            "rules_with_unknown": len({p.rule_id for p in placed if p.outcome == "unknown"}),
            "tactic_mismatches": sum(1 for p in placed if not p.result.tactic_ok),
            "unknown_tactics": validation.report.unknown_tactics,
            "examples": _examples(placed),
            "tactic_mismatch_examples": validation.report.tactic_mismatch_examples,
            "rules_linked_to_analytics": linked,
            "share_linked_to_analytics": round(linked / rules, 4) if rules else 0.0,
            "upgrades": [*(old.upgrades or []), record],
        }
    )


def _store(session: Session, loaded: _Loaded, report: ImportReport) -> None:
    """The catalog row: the target release, the new report, a new revision (the key of every
    cache of the catalog's derived data; `imported_at` stays the import's)."""
    cat = loaded.catalog
    cat.attack_version = loaded.release.version
    cat.report = report.model_dump(mode="json")
    cat.revision += 1
    session.add(cat)
    session.flush()
    count = session.exec(
        select(func.count()).select_from(Rule).where(Rule.catalog_id == cat.id)
    ).one()
    if count != len(loaded.rules) or cat.rule_count != len(loaded.rules):
        raise Conflict(f"catalog {cat.name!r} changed while it was upgraded; nothing was written")


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


def _examples(placed: list[_Placed]) -> dict[str, list[MappingExample]]:
    out: dict[str, list[MappingExample]] = {}
    for p in placed:
        bucket = out.setdefault(p.outcome, [])
        if len(bucket) < EXAMPLES:
            bucket.append(
                MappingExample(
                    rule_id=p.rule_id,
                    written=p.row.written,
                    technique=p.result.technique,
                    note=p.note,
                )
            )
    return out
