"""Reads of a catalog's rule → technique mappings for other domains (coverage, refresh).

Coverage and the release diff ask whole-catalog questions (every counted mapping, every written
id); they get plain rows from here instead of querying the catalog tables, so a schema change
stays in this folder. Statements are built once (a summary over 100k rules reads them per import).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from app.catalog.formats.dettect_techniques import SEVERITY
from app.catalog.tables import Catalog, Rule, RuleDataComponent, RuleTechnique


class CountedMapping(NamedTuple):
    """A mapping that counts for coverage (outcome ok or remapped) with its rule's weighing."""

    technique: str | None
    tactic: str | None  # pinned tactic shortname, if the catalog pinned one
    outcome: str
    enabled: bool
    status: str | None
    severity: str | None
    rule_pk: int | None


class WrittenMapping(NamedTuple):
    """A mapping as the catalog wrote it and as it resolved: what a new release may make stale."""

    rule_id: str
    rule_name: str
    rule_title: str
    written: str
    technique: str | None


class RuleTelemetry(NamedTuple):
    """What a rule needs to fire: the platforms its catalog wrote and the data components its
    log sources provide (empty when kbmap could not place them)."""

    rule_pk: int
    platforms: tuple[str, ...]
    data_components: tuple[str, ...]


_RULE_PLATFORMS = sa_select(col(Rule.id), col(Rule.platforms)).where(
    col(Rule.catalog_id) == bindparam("cid")
)
_RULE_COMPONENTS = sa_select(
    col(RuleDataComponent.rule_pk), col(RuleDataComponent.data_component)
).where(col(RuleDataComponent.catalog_id) == bindparam("cid"))
_FOOTPRINT = (
    sa_select(
        col(Rule.rule_id),
        col(Rule.enabled),
        col(Rule.status),
        col(RuleTechnique.technique),
        col(RuleTechnique.original),
    )
    .select_from(Rule)
    .outerjoin(RuleTechnique, col(RuleTechnique.rule_pk) == col(Rule.id))
    .join(Catalog, col(Catalog.id) == col(Rule.catalog_id))
    .where(col(Catalog.name) == bindparam("name"))
)
_LOGBOOKS = (
    sa_select(col(Rule.rule_id), col(Rule.extra), col(RuleTechnique.technique))
    .select_from(Rule)
    .join(RuleTechnique, col(RuleTechnique.rule_pk) == col(Rule.id))
    .join(Catalog, col(Catalog.id) == col(Rule.catalog_id))
    .where(col(Catalog.name) == bindparam("name"))
)
_CATALOGS_BY_ID = sa_select(Catalog).where(col(Catalog.id).in_(bindparam("ids", expanding=True)))
_COUNTED: Any = (  # `Any`: the labelled column has no static type
    sa_select(
        col(RuleTechnique.technique),
        col(RuleTechnique.tactic),
        col(RuleTechnique.outcome),
        col(Rule.enabled),
        col(Rule.status),
        col(Rule.severity),
        col(Rule.id).label("rule_pk"),
    )
    .join(Rule, col(Rule.id) == RuleTechnique.rule_pk)
    .where(
        col(RuleTechnique.catalog_id) == bindparam("cid"),
        col(RuleTechnique.outcome).in_(("ok", "remapped")),
    )
)
_WRITTEN = (
    sa_select(
        col(Rule.rule_id),
        col(Rule.name),
        col(Rule.title),
        col(RuleTechnique.written),
        col(RuleTechnique.technique),
    )
    .join(Rule, col(Rule.id) == col(RuleTechnique.rule_pk))
    .where(col(RuleTechnique.catalog_id) == bindparam("cid"))
    .order_by(col(Rule.rule_id), col(RuleTechnique.id))
)


def catalogs_by_id(session: Session, ids: Collection[int]) -> list[Catalog]:
    """The catalog rows of `ids` (from `catalog_ids`), sorted by name."""
    if not ids:
        return []
    rows = session.scalars(_CATALOGS_BY_ID, {"ids": list(ids)}).all()
    return sorted(rows, key=lambda c: c.name)


def counted_mappings(session: Session, *, catalog_id: int) -> Sequence[CountedMapping]:
    """Every mapping of the catalog that counts for coverage, with its rule's weighing fields.

    The database rows are returned as they come (same field names, same order):
    building 100k named tuples would add a tenth to a catalog's first coverage.
    """
    rows = session.execute(_COUNTED, {"cid": catalog_id}).all()
    return cast("Sequence[CountedMapping]", rows)


def written_mappings(session: Session, *, catalog_id: int) -> list[WrittenMapping]:
    """Every mapping of the catalog as written, by rule id then mapping order."""
    rows = session.execute(_WRITTEN, {"cid": catalog_id}).all()
    return [WrittenMapping(*r) for r in rows]


class RuleFootprint(NamedTuple):
    """What a rule contributes, as a record of a change compares it before and after: whether it
    counts, and the techniques it maps (with the id an upgrade rewrote each from)."""

    enabled: bool
    status: str | None
    techniques: frozenset[str]
    originals: tuple[tuple[str, str], ...]  # (technique, the id before an upgrade rewrote it)


def rule_footprints(session: Session, *, catalog: str) -> dict[str, RuleFootprint]:
    """Rule id → its footprint, for every rule of the catalog named (none: empty)."""
    acc: dict[str, tuple[bool, str | None, set[str], list[tuple[str, str]]]] = {}
    for rid, enabled, status, technique, original in session.execute(_FOOTPRINT, {"name": catalog}):
        entry = acc.setdefault(rid, (bool(enabled), status, set(), []))
        if technique:
            entry[2].add(technique)
            if original and original != technique:
                entry[3].append((technique, original))
    return {
        rid: RuleFootprint(en, st, frozenset(ts), tuple(orig))
        for rid, (en, st, ts, orig) in acc.items()
    }


class LogbookEntry(NamedTuple):
    """One dated score of a hand-kept detection (a DeTT&CT `score_logbook` entry), as the rule it
    became would weigh it then."""

    date: str  # YYYY-MM-DD
    rule_id: str
    technique: str
    enabled: bool
    severity: str | None


def logbooks(session: Session, *, catalog: str) -> list[LogbookEntry]:
    """Every dated score of the catalog's rules that keep a score logbook, oldest first."""
    out: list[LogbookEntry] = []
    for rid, extra, technique in session.execute(_LOGBOOKS, {"name": catalog}):
        for entry in (extra or {}).get("score_logbook") or ():
            date, score = entry.get("date"), entry.get("score")
            if technique and isinstance(date, str) and isinstance(score, int):
                out.append(LogbookEntry(date, rid, technique, score >= 1, SEVERITY.get(score)))
    return sorted(out, key=lambda e: e.date)  # stable: one date's scores stay as written


def rule_telemetry(session: Session, *, catalog_id: int) -> list[RuleTelemetry]:
    """Every rule of the catalog with its platforms and data components (two statements)."""
    components: dict[int, list[str]] = {}
    for pk, dc in session.execute(_RULE_COMPONENTS, {"cid": catalog_id}).all():
        components.setdefault(pk, []).append(dc)
    return [
        RuleTelemetry(pk, tuple(platforms or ()), tuple(dict.fromkeys(components.get(pk, ()))))
        for pk, platforms in session.execute(_RULE_PLATFORMS, {"cid": catalog_id}).all()
    ]


class RuleText(NamedTuple):
    """A rule as a text search reads it: its id and the texts it is found by."""

    rule_id: str
    name: str
    title: str
    description: str


_RULE_TEXTS = sa_select(
    col(Rule.rule_id), col(Rule.name), col(Rule.title), col(Rule.description)
).where(col(Rule.catalog_id) == bindparam("cid"))


def rule_texts(session: Session, *, catalog_id: int) -> Sequence[RuleText]:
    """Every rule of the catalog with its texts, for a search index (rows as they come)."""
    rows = session.execute(_RULE_TEXTS, {"cid": catalog_id}).all()
    return cast("Sequence[RuleText]", rows)
