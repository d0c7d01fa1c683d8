"""Which rules read a data component or an analytic: the object pages' "rules that read it".

A rule reads a data component when one of its log sources was linked to it at import
(`rule_data_component`, by name), and an analytic when it reads that analytic's log sources
(`rule_analytic`, 18+). A data component like Process Creation is read by thousands of rules, so
the database counts them and hands over only the first `limit` of each catalog (three
statements, whatever the number of rules).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import func, union
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from app.catalog.catalogs import catalog_ids
from app.catalog.tables import Rule, RuleAnalytic, RuleDataComponent


class RuleReading(NamedTuple):
    """One rule and what it reads (data component names and analytic ids, joined)."""

    catalog: str
    rule_id: str
    title: str
    enabled: bool
    reads: str


@dataclass(frozen=True)
class RulesReading:
    """Per catalog, how many rules read the objects, and the first of them by rule id."""

    totals: dict[str, int]
    rules: list[RuleReading]


def _links(cids: list[int], components: Collection[str], analytics: Collection[str]) -> Any:
    """(catalog id, rule pk, what it reads) of the rules reading any of them."""
    parts: list[Any] = [
        sa_select(col(t.catalog_id), col(t.rule_pk), key.label("key")).where(
            col(t.catalog_id).in_(cids), key.in_(list(keys))
        )
        for t, key, keys in (
            (RuleDataComponent, col(RuleDataComponent.data_component), components),
            (RuleAnalytic, col(RuleAnalytic.analytic), analytics),
        )
        if keys
    ]
    return union(*parts).subquery() if len(parts) > 1 else parts[0].subquery()


def rules_reading(
    session: Session,
    *,
    catalogs: Sequence[str] | None,
    data_components: Collection[str] = (),
    analytics: Collection[str] = (),
    limit: int = 50,
) -> RulesReading:
    """Rules of the named catalogs (all when None; an unknown name is NotFound) that read any
    of the data components (by name) or analytics (by id)."""
    names = catalog_ids(session, catalogs)
    if not names or not (data_components or analytics):
        return RulesReading({}, [])
    links = _links(list(names), data_components, analytics)
    pks = sa_select(links.c.catalog_id, links.c.rule_pk).distinct().subquery()
    counts = session.execute(
        sa_select(pks.c.catalog_id, func.count()).group_by(pks.c.catalog_id)
    ).all()
    rank = func.row_number().over(partition_by=col(Rule.catalog_id), order_by=col(Rule.rule_id))
    ranked = (
        sa_select(
            col(Rule.id),
            col(Rule.catalog_id),
            col(Rule.rule_id),
            col(Rule.title),
            col(Rule.name),
            col(Rule.enabled),
            rank.label("rn"),
        )
        .join(pks, pks.c.rule_pk == col(Rule.id))
        .subquery()
    )
    first = session.execute(sa_select(ranked).where(ranked.c.rn <= limit)).all()
    reads: dict[int, set[str]] = defaultdict(set)
    chosen = [r[0] for r in first]
    for pk, key in session.execute(
        sa_select(links.c.rule_pk, links.c.key).where(links.c.rule_pk.in_(chosen))
    ).all():
        reads[pk].add(key)
    rules = [
        RuleReading(names[cid], rid, title or name or rid, bool(en), ", ".join(sorted(reads[pk])))
        for pk, cid, rid, title, name, en, _rn in first
    ]
    rules.sort(key=lambda r: (r.catalog, r.rule_id))
    return RulesReading({names[c]: int(n) for c, n in counts}, rules)
