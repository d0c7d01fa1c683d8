"""Coverage and gaps: per-technique scores, summaries, catalog comparison, gap ranking.

Release facts (techniques, threat users, data components, detection strategies) and each
catalog's mapping rows are read once and cached in the process, keyed by release id + load time
and catalog id + import time, so a summary over 700 techniques and 100k rules is in-memory work.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.attack import service as attack_service
from app.attack.service import TechniqueIndex
from app.attack.tables import AttackObject, Relationship, Release, TechniqueDataComponent
from app.catalog import service as catalog_service
from app.catalog.tables import Catalog, Rule, RuleTechnique
from app.core.cache import BoundedCache
from app.core.config import CoverageWeights
from app.core.errors import InvalidInput, Location
from app.core.pages import Page
from app.coverage.models import (
    CatalogComparison,
    CatalogCount,
    CompareRow,
    Count,
    CoverageSummary,
    DataComponentCount,
    DetectionStrategyCount,
    Gap,
    GroupCount,
    PriorityParts,
    TechniqueCoverage,
)
from app.coverage.scoring import rule_weight, score


@dataclass
class ReleaseFacts:
    """What coverage needs of one release, computed once per loaded release."""

    index: TechniqueIndex
    users: dict[str, dict[str, set[str]]]  # technique → kind (group/software/campaign) → ids
    user_names: dict[str, str]  # group/software/campaign id → name
    data_components: dict[str, set[str]]  # technique → data component names
    component_ids: dict[str, str | None]  # data component name → id
    strategies: dict[str, list[tuple[str | None, str]]]  # technique → (id, name)
    analytics: dict[str, set[str]]  # technique → analytic ids
    technique_users: dict[str, set[str]] = field(default_factory=dict)  # user id → techniques


@dataclass
class TechniqueRules:
    """One catalog's rules on one technique: rule pk → weight, unpinned and per pinned tactic."""

    unpinned: dict[int, float] = field(default_factory=dict)
    pinned: dict[str, dict[int, float]] = field(default_factory=dict)
    remapped: set[int] = field(default_factory=set)

    def all_rules(self) -> dict[int, float]:
        out = dict(self.unpinned)
        for rules in self.pinned.values():
            for pk, w in rules.items():
                out[pk] = max(out.get(pk, 0.0), w)
        return out


@dataclass
class CatalogWeights:
    """A catalog's counted mappings, aggregated per technique once per import and weight set."""

    techniques: dict[str, TechniqueRules]
    mapped_rules: int
    covered: set[str]  # techniques with at least one rule of weight > 0


_release_cache: BoundedCache[ReleaseFacts] = BoundedCache()
_catalog_cache: BoundedCache[CatalogWeights] = BoundedCache(64)


def release_facts(session: Session, *, release: Release) -> ReleaseFacts:
    """Threat users, data components and strategies per technique; once per loaded release."""
    return _release_cache.get_or_make(
        attack_service.release_key(release), lambda: _build_release_facts(session, release)
    )


def _build_release_facts(session: Session, release: Release) -> ReleaseFacts:
    rid = release.id or 0
    index = attack_service.technique_index(session, release=release)
    objs = session.execute(
        sa_select(*attack_service.BRIEF_COLUMNS).where(
            col(AttackObject.release_id) == rid,
            col(AttackObject.kind).in_(
                (
                    "technique",
                    "group",
                    "software",
                    "campaign",
                    "data_component",
                    "detection_strategy",
                )
            ),
        )
    ).all()
    live = {s: (k, a, n) for s, k, a, n, rev, dep in objs if not rev and not dep}
    rels = session.exec(
        select(
            Relationship.relationship_type, Relationship.source_ref, Relationship.target_ref
        ).where(
            Relationship.release_id == rid,
            col(Relationship.revoked).is_(False),
            col(Relationship.relationship_type).in_(("uses", "attributed-to", "detects")),
        )
    ).all()
    attributed: dict[str, set[str]] = defaultdict(set)
    for rtype, src, dst in rels:
        if rtype == "attributed-to" and src in live and dst in live:
            attributed[src].add(dst)
    users: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    names: dict[str, str] = {}
    strategies: dict[str, list[tuple[str | None, str]]] = defaultdict(list)
    for rtype, src, dst in rels:
        if src not in live or dst not in live or live[dst][0] != "technique":
            continue
        tid = live[dst][1] or ""
        kind, aid, name = live[src]
        if rtype == "uses" and kind in ("group", "software", "campaign") and aid:
            users[tid][kind].add(aid)
            names[aid] = name
            if kind == "campaign":
                for g in attributed.get(src, ()):
                    _k, gid, gname = live[g]
                    if gid:
                        users[tid]["group"].add(gid)
                        names[gid] = gname
        elif rtype == "detects" and kind == "detection_strategy":
            strategies[tid].append((aid, name))
    dcs: dict[str, set[str]] = defaultdict(set)
    analytics: dict[str, set[str]] = defaultdict(set)
    component_ids: dict[str, str | None] = {}
    analytic_ids: dict[str, str | None] = dict(
        session.execute(
            sa_select(col(AttackObject.stix_id), col(AttackObject.attack_id)).where(
                col(AttackObject.release_id) == rid, col(AttackObject.kind) == "analytic"
            )
        ).all()
    )
    for t_ref, dc_ref, an_ref in session.exec(
        select(
            TechniqueDataComponent.technique_ref,
            TechniqueDataComponent.data_component_ref,
            TechniqueDataComponent.analytic_ref,
        ).where(TechniqueDataComponent.release_id == rid)
    ).all():
        if t_ref in live and dc_ref in live:
            tid = live[t_ref][1] or ""
            _k, dc_id, dc_name = live[dc_ref]
            dcs[tid].add(dc_name)
            component_ids[dc_name] = dc_id
            if an_ref and (an_id := analytic_ids.get(an_ref)):
                analytics[tid].add(an_id)
    facts = ReleaseFacts(
        index=index,
        users=users,
        user_names=names,
        data_components=dcs,
        component_ids=component_ids,
        strategies=strategies,
        analytics=analytics,
    )
    for tid, kinds in users.items():
        for ids in kinds.values():
            for uid in ids:
                facts.technique_users.setdefault(uid, set()).add(tid)
    return facts


def catalog_mappings(
    session: Session, *, catalog: Catalog, weights: CoverageWeights
) -> CatalogWeights:
    """A catalog's counted mappings with their rule weights; once per import and weight set."""
    key = (catalog.id or 0, f"{catalog.imported_at}|{weights.model_dump_json()}")
    return _catalog_cache.get_or_make(key, lambda: _load_mappings(session, catalog, weights))


def _load_mappings(session: Session, catalog: Catalog, weights: CoverageWeights) -> CatalogWeights:
    rows = session.execute(
        sa_select(
            col(RuleTechnique.technique),
            col(RuleTechnique.tactic),
            col(RuleTechnique.outcome),
            col(Rule.enabled),
            col(Rule.status),
            col(Rule.severity),
            col(Rule.id),
        )
        .join(Rule, col(Rule.id) == RuleTechnique.rule_pk)
        .where(
            col(RuleTechnique.catalog_id) == catalog.id,
            col(RuleTechnique.outcome).in_(("ok", "remapped")),
        )
    ).all()
    techniques: dict[str, TechniqueRules] = defaultdict(TechniqueRules)
    pks: set[int] = set()
    covered: set[str] = set()
    for t, tac, o, en, st, sev, pk in rows:
        tid, rule = t or "", pk or 0
        w = rule_weight(enabled=en, status=st, level=sev, w=weights)
        agg = techniques[tid]
        bucket = agg.pinned.setdefault(tac, {}) if tac else agg.unpinned
        bucket[rule] = max(bucket.get(rule, 0.0), w)
        if o == "remapped":
            agg.remapped.add(rule)
        if w > 0:
            covered.add(tid)
        pks.add(rule)
    return CatalogWeights(techniques=dict(techniques), mapped_rules=len(pks), covered=covered)


@dataclass
class Scope:
    """A release, catalogs and filters: the question a coverage call answers."""

    release: Release
    catalogs: list[Catalog]
    platforms: list[str] = field(default_factory=list)
    tactics: list[str] = field(default_factory=list)
    threat: list[str] = field(default_factory=list)  # group / software / campaign ids


def make_scope(
    session: Session,
    *,
    release: Release,
    catalogs: Sequence[str] | None = None,
    platforms: Sequence[str] | None = None,
    tactics: Sequence[str] | None = None,
    threat: Sequence[str] | None = None,
) -> Scope:
    """Filter values in any form kbmap prints are resolved here, once, by the release's
    vocabulary; an unknown one is an error naming what is known."""
    words = attack_service.vocabulary(session, release=release)
    ids = catalog_service.catalog_ids(session, catalogs)
    rows = session.exec(select(Catalog).where(col(Catalog.id).in_(list(ids)))).all() if ids else []
    return Scope(
        release=release,
        catalogs=sorted(rows, key=lambda c: c.name),
        platforms=words.platform_names(_split(platforms)),
        tactics=words.tactic_shortnames(_split(tactics)),
        threat=words.threat_ids(_split(threat)),
    )


def _split(values: Sequence[str] | None) -> list[str]:
    return [v.strip() for item in values or () for v in item.split(",") if v.strip()]


def technique_rows(
    session: Session, *, scope: Scope, weights: CoverageWeights
) -> list[TechniqueCoverage]:
    """One row per active technique in scope (platform, tactic and threat filters applied)."""
    facts = release_facts(session, release=scope.release)
    per_catalog = [
        (c.name, catalog_mappings(session, catalog=c, weights=weights)) for c in scope.catalogs
    ]
    infos = facts.index.techniques
    children: dict[str, list[str]] = defaultdict(list)
    for tid, info in infos.items():
        if info.status == "active" and info.is_subtechnique:
            children[tid.split(".")[0]].append(tid)

    def own(tid: str) -> tuple[float, dict[int, float], dict[str, float], set[str], int]:
        """Merge the catalogs' rules on one technique (rule pks are unique across catalogs)."""
        unpinned: dict[int, float] = {}
        pinned: dict[str, dict[int, float]] = {}
        cats: set[str] = set()
        remapped = 0
        for cname, cw in per_catalog:
            agg = cw.techniques.get(tid)
            if agg is None:
                continue
            unpinned.update(agg.unpinned)
            for tac, rules in agg.pinned.items():
                pinned.setdefault(tac, {}).update(rules)
            remapped += len(agg.remapped)
            if tid in cw.covered:
                cats.add(cname)
        for tac in [t for t in pinned if t not in infos[tid].tactics]:
            # a pin to a tactic this release does not give the technique (flagged at import or
            # made stale by a release) falls back to the technique's own tactics
            for pk, w in pinned.pop(tac).items():
                unpinned[pk] = max(unpinned.get(pk, 0.0), w)
        per_rule = TechniqueRules(unpinned, pinned).all_rules()
        tscores: dict[str, float] = {}
        if pinned:
            for tac in infos[tid].tactics:
                tscores[tac] = score([*unpinned.values(), *pinned.get(tac, {}).values()], weights)
        elif unpinned:
            tscores = dict.fromkeys(infos[tid].tactics, score(unpinned.values(), weights))
        return score(per_rule.values(), weights), per_rule, tscores, cats, remapped

    wanted = _in_scope(facts, scope)
    computed = {
        tid: own(tid) for tid in set(wanted) | {c for t in wanted for c in children.get(t, ())}
    }
    rows: list[TechniqueCoverage] = []
    for tid in wanted:
        info = infos[tid]
        s, per_rule, tscores, cats, remapped = computed[tid]
        subs = children.get(tid, [])
        sub_cov = sum(1 for sub in subs if computed[sub][0] > 0)
        rolled: dict[int, float] = dict(per_rule)
        for sub in subs:
            for pk, w in computed[sub][1].items():
                rolled[pk] = max(rolled.get(pk, 0.0), w)
        rscore = score(rolled.values(), weights)
        differing = len(set(tscores.values())) > 1 or (0 < len(tscores) < len(info.tactics))
        rows.append(
            TechniqueCoverage(
                id=tid,
                name=info.name,
                tactics=list(info.tactics),
                platforms=list(info.platforms),
                is_subtechnique=info.is_subtechnique,
                parent=tid.split(".")[0] if info.is_subtechnique else None,
                rules=len(per_rule),
                remapped_rules=remapped,
                score=s,
                covered=s > 0,
                catalogs=sorted(cats),
                subtechniques_total=len(subs),
                subtechniques_covered=sub_cov,
                rolled_up_rules=len(rolled),
                rolled_up_score=rscore,
                rolled_up_covered=rscore > 0,
                tactic_scores={t: tscores.get(t, 0.0) for t in info.tactics} if differing else {},
            )
        )
    return rows


def _in_scope(facts: ReleaseFacts, scope: Scope) -> list[str]:
    plats = {p.lower() for p in scope.platforms}
    tacs = set(scope.tactics)
    threat_techs: set[str] | None = None
    if scope.threat:
        unknown = [t for t in scope.threat if t not in facts.technique_users]
        if unknown:
            raise InvalidInput(  # known (make_scope resolved them) but using no technique
                f"group, software or campaign {', '.join(unknown)} uses no technique "
                f"in ATT&CK {facts.index.domain} {facts.index.version}",
                Location(field="groups"),
            )
        threat_techs = set().union(*(facts.technique_users[t] for t in scope.threat))
    out = []
    for tid, info in sorted(facts.index.techniques.items()):
        if info.status != "active":
            continue
        if plats and not plats & {p.lower() for p in info.platforms}:
            continue
        if tacs and not tacs & set(info.tactics):
            continue
        if threat_techs is not None and tid not in threat_techs:
            continue
        out.append(tid)
    return out


def _count(rows: Iterable[TechniqueCoverage]) -> Count:
    rows = list(rows)
    covered = sum(1 for r in rows if r.covered)
    return Count(
        total=len(rows),
        covered=covered,
        percent=round(100 * covered / len(rows), 1) if rows else 0.0,
    )


def summary(session: Session, *, scope: Scope, weights: CoverageWeights) -> CoverageSummary:
    rows = technique_rows(session, scope=scope, weights=weights)
    facts = release_facts(session, release=scope.release)
    by_tactic = []
    for t in facts.index.tactics:
        in_t = [r for r in rows if t.shortname in r.tactics]
        if not in_t and scope.tactics:
            continue
        covered = sum(
            1
            for r in in_t
            if (r.tactic_scores.get(t.shortname, r.score) if r.tactic_scores else r.score) > 0
        )
        by_tactic.append(
            GroupCount(
                key=t.shortname,
                name=t.name,
                total=len(in_t),
                covered=covered,
                percent=round(100 * covered / len(in_t), 1) if in_t else 0.0,
            )
        )
    platforms = sorted({p for r in rows for p in r.platforms})
    by_platform = []
    for p in platforms:
        c = _count(r for r in rows if p in r.platforms)
        by_platform.append(GroupCount(key=p, name=p, **c.model_dump()))
    in_scope = {r.id for r in rows}
    by_catalog = []
    for cat in scope.catalogs:
        cw = catalog_mappings(session, catalog=cat, weights=weights)
        techs = cw.covered & in_scope
        by_catalog.append(
            CatalogCount(
                catalog=cat.name,
                rules=cat.rule_count,
                rules_mapped=cw.mapped_rules,
                techniques_covered=len(techs),
                percent=round(100 * len(techs) / len(in_scope), 1) if in_scope else 0.0,
            )
        )
    return CoverageSummary(
        domain=scope.release.domain,
        version=scope.release.version,
        catalogs=[c.name for c in scope.catalogs],
        filters={"platform": scope.platforms, "tactic": scope.tactics, "threat": scope.threat},
        techniques=_count(r for r in rows if not r.is_subtechnique),
        subtechniques=_count(r for r in rows if r.is_subtechnique),
        all=_count(rows),
        by_tactic=by_tactic,
        by_platform=by_platform,
        by_catalog=by_catalog,
    )


def by_data_component(
    session: Session, *, scope: Scope, weights: CoverageWeights
) -> list[DataComponentCount]:
    """For each data component: techniques it can detect in scope, and how many rules cover."""
    rows = {r.id: r for r in technique_rows(session, scope=scope, weights=weights)}
    facts = release_facts(session, release=scope.release)
    per: dict[str, list[str]] = defaultdict(list)
    for tid in rows:
        for dc in facts.data_components.get(tid, ()):
            per[dc].append(tid)
    out = []
    for dc, techs in sorted(per.items()):
        unc = sorted(t for t in techs if not rows[t].covered)
        out.append(
            DataComponentCount(
                id=facts.component_ids.get(dc),
                name=dc,
                techniques=len(techs),
                covered=len(techs) - len(unc),
                uncovered=len(unc),
                uncovered_techniques=unc,
            )
        )
    return sorted(out, key=lambda d: (-d.uncovered, d.name))


def by_detection_strategy(
    session: Session, *, scope: Scope, weights: CoverageWeights
) -> list[DetectionStrategyCount]:
    rows = {r.id: r for r in technique_rows(session, scope=scope, weights=weights)}
    facts = release_facts(session, release=scope.release)
    per: dict[tuple[str | None, str], list[str]] = defaultdict(list)
    for tid in rows:
        for s in facts.strategies.get(tid, ()):
            per[s].append(tid)
    return [
        DetectionStrategyCount(
            id=k[0], name=k[1], techniques=sorted(v), covered=any(rows[t].covered for t in v)
        )
        for k, v in sorted(per.items(), key=lambda kv: kv[0][0] or "")
    ]


def compare(session: Session, *, a: Scope, b: Scope, weights: CoverageWeights) -> CatalogComparison:
    """Techniques covered by both catalog sets, only one, or neither; with counts per tactic."""
    ra = {r.id: r for r in technique_rows(session, scope=a, weights=weights)}
    rb = {r.id: r for r in technique_rows(session, scope=b, weights=weights)}
    facts = release_facts(session, release=a.release)
    sets: dict[str, list[str]] = {"both": [], "only_a": [], "only_b": [], "neither": []}
    where: dict[str, str] = {}
    for tid in sorted(ra):
        ca, cb = ra[tid].covered, rb[tid].covered
        key = "both" if ca and cb else "only_a" if ca else "only_b" if cb else "neither"
        sets[key].append(tid)
        where[tid] = key
    by_tactic = []
    for t in facts.index.tactics:
        counts = dict.fromkeys(sets, 0)
        for tid, r in ra.items():
            if t.shortname in r.tactics:
                counts[where[tid]] += 1
        by_tactic.append(CompareRow(tactic=t.shortname, **counts))
    return CatalogComparison(
        domain=a.release.domain,
        version=a.release.version,
        a=[c.name for c in a.catalogs],
        b=[c.name for c in b.catalogs],
        by_tactic=by_tactic,
        **sets,
    )


# ---- gaps --------------------------------------------------------------------------------------

THREAT_WEIGHT = 10.0  # × ln(1 + groups + software + campaigns using the technique)
PLATFORM_WEIGHT = 2.0  # × platforms of interest the technique spans
CHEAP_BONUS = 15.0  # telemetry already collected: a rule is all that is missing


def gaps(
    session: Session,
    *,
    scope: Scope,
    weights: CoverageWeights,
    collected: Sequence[str] | None = None,
    min_score: float = 0.0,
) -> list[Gap]:
    """Uncovered (score 0) and weak (score < min_score) techniques, highest priority first."""
    facts = release_facts(session, release=scope.release)
    have = {c.lower() for c in _split(collected)}
    known = {dc.lower() for dcs in facts.data_components.values() for dc in dcs}
    unknown = sorted(c for c in have if c not in known)
    if unknown:
        raise InvalidInput(f"unknown data component(s) in collected: {', '.join(unknown)}")
    plats = {p.lower() for p in scope.platforms}
    threat = set(scope.threat)
    out = []
    for r in technique_rows(session, scope=scope, weights=weights):
        if r.covered and r.score >= min_score:
            continue
        users = facts.users.get(r.id, {})
        ids = {k: sorted(v & threat) if threat else sorted(v) for k, v in users.items()}
        uses = sum(len(v) for v in ids.values())
        span = len([p for p in r.platforms if not plats or p.lower() in plats])
        dcs = sorted(facts.data_components.get(r.id, ()))
        got = [d for d in dcs if d.lower() in have]
        telemetry = "unknown" if not have else ("cheap" if got else "blind")
        weakness = round(1.0 - r.score / 100, 3)
        parts = PriorityParts(
            threat_uses=uses,
            threat=round(THREAT_WEIGHT * math.log1p(uses), 2),
            platform_span=span,
            platforms=PLATFORM_WEIGHT * span,
            telemetry=telemetry,
            telemetry_bonus=CHEAP_BONUS if telemetry == "cheap" else 0.0,
            weakness=weakness,
        )
        priority = round((parts.threat + parts.platforms + parts.telemetry_bonus) * weakness, 2)
        out.append(
            Gap(
                id=r.id,
                name=r.name,
                tactics=r.tactics,
                platforms=r.platforms,
                score=r.score,
                priority=priority,
                parts=parts,
                groups=ids.get("group", []),
                software=ids.get("software", []),
                campaigns=ids.get("campaign", []),
                data_components=dcs,
                collected_data_components=got,
                detection_strategies=sorted(s[0] or "" for s in facts.strategies.get(r.id, ())),
                analytics=sorted(facts.analytics.get(r.id, ())),
                mitigations=[],
            )
        )
    out.sort(key=lambda g: (-g.priority, g.id))
    return out


def with_mitigations(session: Session, *, release: Release, items: list[Gap]) -> list[Gap]:
    """Fill mitigations (compensating controls) for the gaps of one page only."""
    found = attack_service.mitigations_for(
        session, release=release, technique_ids=[g.id for g in items]
    )
    for g in items:
        g.mitigations = [{"id": m.id or "", "name": m.name} for m in found.get(g.id, [])]
    return items


def technique_page(
    session: Session,
    *,
    scope: Scope,
    weights: CoverageWeights,
    sort: str = "id",
    covered: bool | None = None,
    min_score: float | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[TechniqueCoverage]:
    """Per-technique rows, filtered and sorted; `uncovered` puts uncovered first (threat view)."""
    rows = technique_rows(session, scope=scope, weights=weights)
    if covered is not None:
        rows = [r for r in rows if r.covered == covered]
    if min_score is not None:
        rows = [r for r in rows if r.score >= min_score]
    keys = {
        "id": lambda r: (r.id,),
        "score": lambda r: (r.score, r.id),
        "-score": lambda r: (-r.score, r.id),
        "rules": lambda r: (r.rules, r.id),
        "-rules": lambda r: (-r.rules, r.id),
        "uncovered": lambda r: (r.covered, r.score, r.id),
    }
    rows.sort(key=keys[sort])
    return Page(items=rows[offset : offset + limit], total=len(rows), limit=limit, offset=offset)


def compare_catalogs(
    session: Session, *, scope: Scope, a: Sequence[str], b: Sequence[str], weights: CoverageWeights
) -> CatalogComparison:
    sa = make_scope(
        session,
        release=scope.release,
        catalogs=_split(a),
        platforms=scope.platforms,
        tactics=scope.tactics,
        threat=scope.threat,
    )
    sb = make_scope(
        session,
        release=scope.release,
        catalogs=_split(b),
        platforms=scope.platforms,
        tactics=scope.tactics,
        threat=scope.threat,
    )
    return compare(session, a=sa, b=sb, weights=weights)


def gap_page(
    session: Session,
    *,
    scope: Scope,
    weights: CoverageWeights,
    collected: Sequence[str] | None = None,
    min_score: float = 0.0,
    limit: int = 100,
    offset: int = 0,
) -> Page[Gap]:
    found = gaps(session, scope=scope, weights=weights, collected=collected, min_score=min_score)
    items = with_mitigations(session, release=scope.release, items=found[offset : offset + limit])
    return Page(items=items, total=len(found), limit=limit, offset=offset)
