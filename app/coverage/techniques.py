"""Per-technique coverage rows: the catalogs' rules merged, scored per tactic, rolled up.

Every other coverage answer (summary, gaps, comparison, layers) is read off these rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, NamedTuple

from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.service import TechniqueIndex, TechniqueInfo
from app.core.config import CoverageWeights
from app.core.errors import InvalidInput, Location
from app.core.pages import Page
from app.coverage.effective import Judge, Verdict, make_judge
from app.coverage.facts import (
    CatalogWeights,
    ReleaseFacts,
    TechniqueRules,
    catalog_mappings,
    release_facts,
)
from app.coverage.models import TechniqueCoverage
from app.coverage.scope import Scope
from app.coverage.scoring import score

_CatalogRules = list[tuple[str, CatalogWeights]]  # (catalog name, its weighed mappings)


class _Own(NamedTuple):
    """A technique's own coverage (without its sub-techniques) across the scope's catalogs."""

    score: float
    per_rule: dict[int, float]  # rule pk → weight
    tactic_scores: dict[str, float]
    catalogs: set[str]  # catalogs with a rule of weight > 0 on it
    remapped: int


class Computed(NamedTuple):
    """Everything the rows were read off: what onboarding asks of them again."""

    facts: ReleaseFacts
    own: dict[str, _Own]  # technique → its own rules merged across catalogs
    rows: list[TechniqueCoverage]
    judge: Judge | None
    verdicts: dict[str, Verdict]  # with an environment: each row's


def technique_rows(
    session: Session, *, scope: Scope, weights: CoverageWeights
) -> list[TechniqueCoverage]:
    """One row per active technique in scope (platform, tactic and threat filters applied)."""
    return compute(session, scope=scope, weights=weights).rows


def covered_scores(session: Session, *, scope: Scope, weights: CoverageWeights) -> dict[str, float]:
    """Each active technique the scope's catalogs cover, with its score: the rows' `score` where
    `covered`, without the rows or the release's threat facts (the coverage history records this
    on every write, so it stays a small part of an import). No filters: a scope with platforms,
    tactics or threat is a caller's bug."""
    if scope.platforms or scope.tactics or scope.threat or scope.environment:
        raise ValueError("covered_scores takes a catalogs-only scope")
    per_catalog = [
        (c.name, catalog_mappings(session, catalog=c, weights=weights)) for c in scope.catalogs
    ]
    mapped = {tid for _name, cw in per_catalog for tid in cw.techniques}
    if not mapped:  # no catalog (a release ingested before any import): no index to read
        return {}
    infos = attack_service.technique_index(session, release=scope.release).techniques
    out = {}
    for tid in mapped:
        info = infos.get(tid)
        if info is not None and info.status == "active":
            own = _own(info, tid, per_catalog, weights)
            if own.score > 0:
                out[tid] = own.score
    return out


def compute(session: Session, *, scope: Scope, weights: CoverageWeights) -> Computed:
    """The rows with what they were computed from; judged when the scope names an environment."""
    facts = release_facts(session, release=scope.release)
    per_catalog = [
        (c.name, catalog_mappings(session, catalog=c, weights=weights)) for c in scope.catalogs
    ]
    infos = facts.index.techniques
    children = _children(facts.index)
    wanted = _in_scope(facts, scope)
    computed = {
        tid: _own(infos[tid], tid, per_catalog, weights)
        for tid in set(wanted) | {c for t in wanted for c in children.get(t, ())}
    }
    rows = [_row(tid, infos[tid], computed, children.get(tid, []), weights) for tid in wanted]
    judge = make_judge(session, scope=scope, facts=facts, weights=weights)
    verdicts: dict[str, Verdict] = {}
    if judge is not None:
        for r in rows:
            v = verdicts[r.id] = judge.verdict(r.id, infos[r.id], computed[r.id].per_rule)
            _judged(r, v, judge)
    return Computed(facts, computed, rows, judge, verdicts)


def _judged(row: TechniqueCoverage, v: Verdict, judge: Judge) -> None:
    """The row's environment fields, from its verdict."""
    row.state = v.state  # type: ignore[assignment]  # one of STATES, the Literal's values
    row.effective_score = v.score
    row.effective_rules = v.firing
    row.unknown_rules = v.unknown
    row.missing_log_sources = sorted(v.missing)
    row.systems = judge.system_names(v.systems)
    row.effective_catalogs = sorted(v.catalogs)
    row.visible_data_components = list(v.visible)
    row.detectable_by = v.detectable_by


def _children(index: TechniqueIndex) -> dict[str, list[str]]:
    """Parent id → its active sub-techniques."""
    out: dict[str, list[str]] = defaultdict(list)
    for tid, info in index.techniques.items():
        if info.status == "active" and info.is_subtechnique:
            out[tid.split(".")[0]].append(tid)
    return out


def _own(
    info: TechniqueInfo, tid: str, per_catalog: _CatalogRules, weights: CoverageWeights
) -> _Own:
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
    for tac in [t for t in pinned if t not in info.tactics]:
        # a pin to a tactic this release does not give the technique (flagged at import or
        # made stale by a release) falls back to the technique's own tactics
        for pk, w in pinned.pop(tac).items():
            unpinned[pk] = max(unpinned.get(pk, 0.0), w)
    per_rule = TechniqueRules(unpinned, pinned).all_rules()
    tscores: dict[str, float] = {}
    if pinned:
        for tac in info.tactics:
            tscores[tac] = score([*unpinned.values(), *pinned.get(tac, {}).values()], weights)
    elif unpinned:
        tscores = dict.fromkeys(info.tactics, score(unpinned.values(), weights))
    return _Own(score(per_rule.values(), weights), per_rule, tscores, cats, remapped)


def _row(
    tid: str,
    info: TechniqueInfo,
    computed: dict[str, _Own],
    subs: list[str],
    weights: CoverageWeights,
) -> TechniqueCoverage:
    """The row of one technique: its own coverage and its sub-techniques' rolled into it."""
    own_score, per_rule, tscores, cats, remapped = computed[tid]  # unpacked: hot loop
    rolled: dict[int, float] = dict(per_rule)
    for sub in subs:
        for pk, w in computed[sub][1].items():  # its per_rule
            rolled[pk] = max(rolled.get(pk, 0.0), w)
    rscore = score(rolled.values(), weights)
    differing = len(set(tscores.values())) > 1 or (0 < len(tscores) < len(info.tactics))
    return TechniqueCoverage(
        id=tid,
        name=info.name,
        tactics=list(info.tactics),
        platforms=list(info.platforms),
        is_subtechnique=info.is_subtechnique,
        parent=tid.split(".")[0] if info.is_subtechnique else None,
        rules=len(per_rule),
        remapped_rules=remapped,
        score=own_score,
        covered=own_score > 0,
        catalogs=sorted(cats),
        subtechniques_total=len(subs),
        subtechniques_covered=sum(1 for sub in subs if computed[sub][0] > 0),
        rolled_up_rules=len(rolled),
        rolled_up_score=rscore,
        rolled_up_covered=rscore > 0,
        tactic_scores={t: tscores.get(t, 0.0) for t in info.tactics} if differing else {},
    )


def _in_scope(facts: ReleaseFacts, scope: Scope) -> list[str]:
    """Active technique ids that pass the platform, tactic and threat filters, sorted."""
    plats = {p.lower() for p in scope.platforms}
    tacs = set(scope.tactics)
    threat_techs = _threat_techniques(facts, scope.threat) if scope.threat else None
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
        if scope.techniques and tid not in scope.techniques:
            continue
        out.append(tid)
    return out


def _threat_techniques(facts: ReleaseFacts, threat: list[str]) -> set[str]:
    """Techniques any of the groups, software or campaigns use."""
    unknown = [t for t in threat if t not in facts.technique_users]
    if unknown:
        raise InvalidInput(  # known (make_scope resolved them) but using no technique
            f"group, software or campaign {', '.join(unknown)} uses no technique "
            f"in ATT&CK {facts.index.domain} {facts.index.version}",
            Location(field="groups"),
        )
    return set().union(*(facts.technique_users[t] for t in threat))


_SORT_KEYS: dict[str, Callable[[TechniqueCoverage], tuple[Any, ...]]] = {
    "id": lambda r: (r.id,),
    "score": lambda r: (r.score, r.id),
    "-score": lambda r: (-r.score, r.id),
    "rules": lambda r: (r.rules, r.id),
    "-rules": lambda r: (-r.rules, r.id),
    "uncovered": lambda r: (r.covered, r.score, r.id),
}


def technique_rows_page(
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
    """A page of coverage rows, filtered and sorted; `uncovered` puts uncovered first."""
    rows = technique_rows(session, scope=scope, weights=weights)
    if covered is not None:
        rows = [r for r in rows if r.covered == covered]
    if min_score is not None:
        rows = [r for r in rows if r.score >= min_score]
    rows.sort(key=_SORT_KEYS[sort])
    return Page(items=rows[offset : offset + limit], total=len(rows), limit=limit, offset=offset)
