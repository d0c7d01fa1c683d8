"""Rule reads: one rule, a filtered page of rules, and the rules mapped to given techniques."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import Text, bindparam, cast, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.attack import service as attack_service
from app.catalog.catalogs import catalog_ids
from app.catalog.models import MappingRead, RuleFull, RuleRead, RuleRef
from app.catalog.tables import Catalog, Rule, RuleAnalytic, RuleDataComponent, RuleTechnique
from app.core.db import contains_text
from app.core.errors import InvalidInput, NotFound
from app.core.pages import Page


def rule_reads(session: Session, rules: list[Rule], names: dict[int, str]) -> list[RuleRead]:
    """`rules` as the API shows them, with their mappings, data components and analytics (three
    statements for the whole list)."""
    pks = [r.id for r in rules]
    maps: dict[int, list[MappingRead]] = defaultdict(list)
    dcs: dict[int, list[str]] = defaultdict(list)
    ans: dict[int, list[str]] = defaultdict(list)
    if pks:
        for a in session.exec(select(RuleAnalytic).where(col(RuleAnalytic.rule_pk).in_(pks))).all():
            if a.analytic not in ans[a.rule_pk]:
                ans[a.rule_pk].append(a.analytic)
        for m in session.exec(
            select(RuleTechnique).where(col(RuleTechnique.rule_pk).in_(pks))
        ).all():
            maps[m.rule_pk].append(MappingRead.model_validate(m, from_attributes=True))
        for d in session.exec(
            select(RuleDataComponent).where(col(RuleDataComponent.rule_pk).in_(pks))
        ).all():
            if d.data_component not in dcs[d.rule_pk]:
                dcs[d.rule_pk].append(d.data_component)
    return [
        RuleRead(
            catalog=names[r.catalog_id],
            rule_id=r.rule_id,
            name=r.name,
            title=r.title,
            description=r.description,
            package=r.package,
            severity=r.severity,
            status=r.status,
            enabled=r.enabled,
            platforms=r.platforms,
            references=r.references,
            log_sources=r.log_sources,
            data_components=dcs[r.id or 0],
            analytics=sorted(ans[r.id or 0]),
            path=r.path,
            raw_tags=r.raw_tags,
            tactics=r.tactics,
            mappings=maps[r.id or 0],
        )
        for r in rules
    ]


def list_rules(
    session: Session,
    *,
    catalogs: list[str] | None = None,
    technique: str | None = None,
    include_subtechniques: bool = False,
    tactic: str | None = None,
    data_component: str | None = None,
    status: str | None = None,
    outcome: str | None = None,
    q: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[RuleRead]:
    names = catalog_ids(session, catalogs)
    stmt = select(Rule).where(col(Rule.catalog_id).in_(list(names)))
    if technique or outcome:
        sub = select(RuleTechnique.rule_pk)
        if technique:
            t = technique.strip().upper()
            cond: Any = col(RuleTechnique.technique) == t
            if include_subtechniques:
                cond = or_(cond, col(RuleTechnique.technique).like(f"{t}.%"))
            sub = sub.where(cond)
        if outcome:
            sub = sub.where(RuleTechnique.outcome == outcome)
        stmt = stmt.where(col(Rule.id).in_(sub))
    if data_component:
        sub2 = select(RuleDataComponent.rule_pk).where(
            func.lower(RuleDataComponent.data_component) == data_component.lower()
        )
        stmt = stmt.where(col(Rule.id).in_(sub2))
    if status:
        stmt = stmt.where(Rule.status == status)
    if tactic:  # a quoted shortname in the JSON list: exact (shortnames need no escaping)
        t = _rule_tactic(session, names, tactic)
        stmt = stmt.where(cast(col(Rule.tactics), Text).like(f'%"{t}"%'))
    if q:
        text_columns = (Rule.rule_id, Rule.title, Rule.name, Rule.description)
        stmt = stmt.where(or_(*(contains_text(c, q) for c in text_columns)))
    total = session.exec(select(func.count()).select_from(stmt.subquery())).one()
    ordered = stmt.order_by(col(Rule.catalog_id), col(Rule.rule_id))
    page = list(session.exec(ordered.limit(limit).offset(offset)).all())
    return Page(
        items=rule_reads(session, page, names), total=int(total), limit=limit, offset=offset
    )


def _rule_tactic(session: Session, catalogs: dict[int, str], value: str) -> str:
    """The tactic shortname `value` names in the releases the catalogs were validated against
    (name, id or shortname, as coverage takes them); unknown in all of them is an error."""
    rows = session.exec(select(Catalog).where(col(Catalog.id).in_(list(catalogs)))).all()
    refused: list[InvalidInput] = []
    for domain, version in sorted({(c.domain, c.attack_version) for c in rows}):
        release = attack_service.find_release(session, domain=domain, version=version)
        if release is not None:
            try:
                return attack_service.vocabulary(session, release=release).tactic_shortnames(
                    [value]
                )[0]
            except InvalidInput as exc:
                refused.append(exc)
    if refused:
        raise refused[0]
    return value.strip().lower().replace("_", "-")  # no catalog, or its release is gone


def get_rule(session: Session, *, catalog: str, rule_id: str) -> RuleFull:
    """One rule in full: its list fields, its body and the format's extra fields."""
    names = catalog_ids(session, [catalog])
    rule = session.exec(
        select(Rule).where(col(Rule.catalog_id).in_(list(names)), Rule.rule_id == rule_id)
    ).first()
    if rule is None:
        raise NotFound(f"no rule {rule_id!r} in catalog {catalog!r}")
    return full_rule(session, rule, names)


def full_rule(session: Session, rule: Rule, names: dict[int, str]) -> RuleFull:
    """`rule` as `rule_reads` shows it, with its body and extra fields."""
    read = rule_reads(session, [rule], names)[0]
    return RuleFull(**dict(read), body=rule.body, extra=dict(rule.extra or {}))


# Built once with bound parameters: the technique page runs it on every render, and building
# a statement costs more than SQLite takes to answer it.
_RULES_FOR_TECHNIQUES = (
    sa_select(
        col(RuleTechnique.technique),
        col(RuleTechnique.written),
        col(RuleTechnique.outcome),
        col(Rule.id),
        col(Rule.catalog_id),
        col(Rule.rule_id),
        col(Rule.name),
        col(Rule.title),
        col(Rule.package),
        col(Rule.enabled),
    )
    .join(Rule, col(Rule.id) == col(RuleTechnique.rule_pk))
    .where(
        col(RuleTechnique.catalog_id).in_(bindparam("catalogs", expanding=True)),
        col(RuleTechnique.technique).in_(bindparam("ids", expanding=True)),
        col(RuleTechnique.outcome).in_(("ok", "remapped")),
    )
)


def rules_for_techniques(
    session: Session, *, techniques: Iterable[str], names: dict[int, str]
) -> dict[str, list[RuleRef]]:
    """Rules mapped (after remapping) to each technique id, from the catalogs `names` holds
    (id → name, as `catalog_ids` gives); deprecated/unknown excluded."""
    ids = list(set(techniques))
    if not ids or not names:
        return {}
    rows = (
        session.connection()
        .execute(_RULES_FOR_TECHNIQUES, {"catalogs": list(names), "ids": ids})
        .all()
    )
    out: dict[str, list[RuleRef]] = defaultdict(list)
    seen: set[tuple[str, int]] = set()
    for tech, written, outcome, pk, cid, rid, name, title, package, enabled in sorted(
        rows, key=lambda x: (names[x[4]], x[5])
    ):
        key = (tech or "", pk or 0)
        if key in seen:
            continue
        seen.add(key)
        out[tech or ""].append(
            RuleRef(
                catalog=names[cid],
                rule_id=rid,
                name=name,
                title=title,
                package=package,
                enabled=enabled,
                mapped_as=written,
                how="remapped" if outcome == "remapped" else "direct",
                technique=tech or "",
            )
        )
    return out


_RULE_LABELS = (
    sa_select(col(Rule.id), col(Catalog.name), col(Rule.rule_id))
    .join(Catalog, col(Catalog.id) == col(Rule.catalog_id))
    .where(col(Rule.id).in_(bindparam("pks", expanding=True)))
)


def rule_labels(session: Session, pks: Iterable[int]) -> dict[int, str]:
    """Rule pk → "catalog/rule id", for answers that name many rules briefly."""
    wanted = list(set(pks))
    if not wanted:
        return {}
    rows = session.execute(_RULE_LABELS, {"pks": wanted}).all()
    return {pk: f"{cat}/{rid}" for pk, cat, rid in rows}


class RuleState(NamedTuple):
    """What judging one rule needs beside its telemetry: its pk and what weighs it."""

    pk: int
    enabled: bool
    status: str | None
    severity: str | None


_RULE_STATES = sa_select(
    col(Rule.catalog_id),
    col(Rule.rule_id),
    col(Rule.id),
    col(Rule.enabled),
    col(Rule.status),
    col(Rule.severity),
).where(
    col(Rule.catalog_id).in_(bindparam("cids", expanding=True)),
    col(Rule.rule_id).in_(bindparam("rids", expanding=True)),
)


def rule_states(
    session: Session, pairs: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], RuleState]:
    """(catalog id, rule id) → its pk, enabled flag, status and severity: `RuleRef` carries no
    pk, and judging a rule in an environment needs one."""
    wanted = set(pairs)
    if not wanted:
        return {}
    cids, rids = sorted({c for c, _ in wanted}), sorted({r for _, r in wanted})
    rows = session.execute(_RULE_STATES, {"cids": cids, "rids": rids}).all()
    return {
        (cid, rid): RuleState(pk, bool(en), st, sev)
        for cid, rid, pk, en, st, sev in rows
        if (cid, rid) in wanted
    }
