"""A catalog's rule list as its page shows it: filtered, counted and paged in SQL.

Sigma catalogs hold thousands of rules, so the page asks the database for one page and one count
(two statements, plus one for the page's mappings), never for every rule. A filter value the
catalog does not know is an error listing the values it does know: an empty list would read as
"no rule of that kind", which would be a wrong answer, not a missing filter.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, cast, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.catalog.catalogs import catalog_key, get_catalog_row
from app.catalog.models import OUTCOMES, MappingRead
from app.catalog.tables import Catalog, Rule, RuleTechnique
from app.core.cache import CacheSpec, cached
from app.core.db import contains_text
from app.core.errors import InvalidInput, Location

_TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")


@dataclass(frozen=True)
class RuleFilters:
    """The list's filters as resolved: the tactic as its shortname, the technique upper-cased."""

    technique: str | None = None
    tactic: str | None = None
    outcome: str | None = None
    status: str | None = None
    q: str | None = None


@dataclass
class RuleRow:
    """One line of the list: enough to recognise the rule and see what it maps to."""

    rule_id: str
    title: str
    name: str
    status: str | None
    severity: str | None
    enabled: bool
    tactics: list[str]
    mappings: list[MappingRead] = field(default_factory=list)


@dataclass
class RuleListPage:
    catalog: str
    domain: str
    version: str
    filters: RuleFilters
    items: list[RuleRow]
    total: int
    limit: int
    offset: int
    statuses: list[str]  # the values each filter knows, for the page's form
    tactics: list[str]


@dataclass(frozen=True)
class RuleFacets:
    """The values a catalog's rules hold for each filter: what the form offers and what an
    unknown value's error lists. Reading them scans every rule, so once per catalog revision."""

    statuses: list[str]
    tactics: list[str]
    techniques: list[str]  # mapped to (after remapping), any outcome


RULE_FACETS: CacheSpec[RuleFacets] = CacheSpec("catalog.rule_facets", 64)


def rule_facets(session: Session, catalog: Catalog) -> RuleFacets:
    cid = catalog.id or 0
    return cached(
        session,
        RULE_FACETS,
        catalog_key(catalog),
        lambda: RuleFacets(_statuses(session, cid), _tactics(session, cid), _mapped(session, cid)),
    )


def filter_rules(stmt: Any, f: RuleFilters) -> Any:
    """`stmt` (a select over Rule) narrowed by the filters, all in SQL.

    The tactic is matched in the JSON list as a quoted shortname (`"execution"`): shortnames hold
    no character JSON escapes, so the text match is exact in both SQLite and PostgreSQL.
    """
    if f.technique or f.outcome:
        sub = select(RuleTechnique.rule_pk)
        if f.technique:
            sub = sub.where(RuleTechnique.technique == f.technique)
        if f.outcome:
            sub = sub.where(RuleTechnique.outcome == f.outcome)
        stmt = stmt.where(col(Rule.id).in_(sub))
    if f.status:
        stmt = stmt.where(Rule.status == f.status)
    if f.tactic:
        stmt = stmt.where(cast(col(Rule.tactics), Text).like(f'%"{f.tactic}"%'))
    if f.q:
        stmt = stmt.where(or_(contains_text(Rule.rule_id, f.q), contains_text(Rule.title, f.q)))
    return stmt


def catalog_rule_page(
    session: Session,
    *,
    catalog: str,
    technique: str | None = None,
    tactic: str | None = None,
    outcome: str | None = None,
    status: str | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> RuleListPage:
    """One page of a catalog's rules (by rule id), the total the filters match, and the values
    the form offers. Unknown filter values are refused with the known ones."""
    row = get_catalog_row(session, name=catalog)
    cid = row.id or 0
    facets = rule_facets(session, row)
    f = RuleFilters(
        technique=_known_technique(facets.techniques, row.name, technique),
        tactic=_known(tactic, facets.tactics, "tactic", row.name, fold=_fold_tactic),
        outcome=_known(outcome, list(OUTCOMES), "outcome", row.name),
        status=_known(status, facets.statuses, "status", row.name),
        q=q or None,
    )
    base = filter_rules(select(Rule).where(Rule.catalog_id == cid), f)
    total = session.exec(select(func.count()).select_from(base.subquery())).one()
    paged = base.order_by(col(Rule.rule_id)).limit(limit).offset(offset)
    return RuleListPage(
        catalog=row.name,
        domain=row.domain,
        version=row.attack_version,
        filters=f,
        items=_rows(session, paged),
        total=int(total),
        limit=limit,
        offset=offset,
        statuses=facets.statuses,
        tactics=facets.tactics,
    )


_ROW_COLUMNS = (
    col(Rule.id),
    col(Rule.rule_id),
    col(Rule.title),
    col(Rule.name),
    col(Rule.status),
    col(Rule.severity),
    col(Rule.enabled),
    col(Rule.tactics),
)
_MAPPING_COLUMNS = (
    col(RuleTechnique.rule_pk),
    col(RuleTechnique.written),
    col(RuleTechnique.technique),
    col(RuleTechnique.tactic),
    col(RuleTechnique.outcome),
    col(RuleTechnique.tactic_ok),
    col(RuleTechnique.note),
    col(RuleTechnique.original),
)


def _rows(session: Session, stmt: Any) -> list[RuleRow]:
    """The page's rules (only the columns the list shows) with their mappings: two statements
    for the whole page, read as plain rows (ORM objects cost more than the query here)."""
    rules = session.execute(stmt.with_only_columns(*_ROW_COLUMNS)).all()
    maps: dict[int, list[MappingRead]] = defaultdict(list)
    pks = [r[0] for r in rules]
    if pks:
        mstmt = (
            sa_select(*_MAPPING_COLUMNS)
            .where(col(RuleTechnique.rule_pk).in_(pks))
            .order_by(col(RuleTechnique.id))
        )
        for pk, written, tech, tactic, outcome, ok, note, original in session.execute(mstmt):
            maps[pk].append(
                MappingRead.model_construct(
                    written=written,
                    technique=tech,
                    tactic=tactic,
                    outcome=outcome,
                    tactic_ok=bool(ok),
                    note=note,
                    original=original,
                )
            )
    return [
        RuleRow(
            rule_id=rid,
            title=title,
            name=name,
            status=status,
            severity=severity,
            enabled=bool(enabled),
            tactics=list(tactics or ()),
            mappings=maps[pk],
        )
        for pk, rid, title, name, status, severity, enabled, tactics in rules
    ]


def _statuses(session: Session, cid: int) -> list[str]:
    stmt = sa_select(col(Rule.status)).where(col(Rule.catalog_id) == cid).distinct()
    return sorted(s for (s,) in session.execute(stmt).all() if s)


def _tactics(session: Session, cid: int) -> list[str]:
    """The tactic shortnames the catalog's rules carry (a JSON list per rule: read, then merged;
    small, as it is a column of short lists)."""
    stmt = sa_select(col(Rule.tactics)).where(col(Rule.catalog_id) == cid)
    seen: set[str] = set()
    for (ts,) in session.execute(stmt).all():
        seen.update(ts or ())
    return sorted(seen)


def _fold_tactic(value: str) -> str:
    return value.strip().lower().replace("_", "-").replace(" ", "-")


def _known(
    value: str | None,
    known: list[str],
    what: str,
    catalog: str,
    fold: Any = None,
) -> str | None:
    """`value` as the catalog spells it, or an error listing what the catalog knows."""
    if not value:
        return None
    wanted = fold(value) if fold else value.strip().lower()
    for k in known:
        if (fold(k) if fold else k.lower()) == wanted:
            return k
    raise InvalidInput(
        f"unknown {what} {value!r} in catalog {catalog!r}; known: {', '.join(known) or 'none'}",
        Location(field=what),
    )


def _mapped(session: Session, cid: int) -> list[str]:
    stmt = (
        sa_select(col(RuleTechnique.technique))
        .where(col(RuleTechnique.catalog_id) == cid, col(RuleTechnique.technique).is_not(None))
        .distinct()
    )
    return sorted(t for (t,) in session.execute(stmt).all() if t)


def _known_technique(mapped: list[str], catalog: str, value: str | None) -> str | None:
    """A technique the catalog maps a rule to (after remapping); otherwise the error lists the
    techniques it maps, so a typo or a technique it never names is not an empty list."""
    if not value:
        return None
    tid = value.strip().upper()
    if tid in mapped:
        return tid
    why = "is not an ATT&CK technique id" if not _TECHNIQUE_ID.match(tid) else "maps no rule"
    raise InvalidInput(
        f"technique {value!r} {why} in catalog {catalog!r}; techniques it maps: "
        f"{', '.join(mapped) or 'none'}",
        Location(field="technique"),
    )
