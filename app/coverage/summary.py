"""Coverage summed up: per tactic, platform and catalog; per data component and detection
strategy; and two catalog sets compared. All read off `technique_rows`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlmodel import Session

from app.core.config import CoverageWeights
from app.coverage.facts import ReleaseFacts, catalog_mappings, release_facts
from app.coverage.models import (
    CatalogComparison,
    CatalogCount,
    CompareRow,
    Count,
    CoverageSummary,
    DataComponentCount,
    DetectionStrategyCount,
    GroupCount,
    TechniqueCoverage,
)
from app.coverage.scope import Scope, make_scope, split_values
from app.coverage.scoring import percent
from app.coverage.states import effective_summary
from app.coverage.techniques import compute, technique_rows


def _count(rows: Iterable[TechniqueCoverage]) -> Count:
    rows = list(rows)
    covered = sum(1 for r in rows if r.covered)
    return Count(total=len(rows), covered=covered, percent=percent(covered, len(rows)))


def summary(session: Session, *, scope: Scope, weights: CoverageWeights) -> CoverageSummary:
    """Covered techniques in scope: overall, per tactic, per platform and per catalog."""
    done = compute(session, scope=scope, weights=weights)
    rows, facts = done.rows, done.facts
    return CoverageSummary(
        domain=scope.release.domain,
        version=scope.release.version,
        catalogs=[c.name for c in scope.catalogs],
        filters={"platform": scope.platforms, "tactic": scope.tactics, "threat": scope.threat},
        techniques=_count(r for r in rows if not r.is_subtechnique),
        subtechniques=_count(r for r in rows if r.is_subtechnique),
        all=_count(rows),
        by_tactic=_by_tactic(facts, scope, rows),
        by_platform=_by_platform(rows),
        by_catalog=_by_catalog(session, scope, rows, weights),
        effective=effective_summary(session, scope=scope, done=done),
    )


def _by_tactic(
    facts: ReleaseFacts, scope: Scope, rows: list[TechniqueCoverage]
) -> list[GroupCount]:
    """Per tactic in matrix order; a technique counts by its score for that tactic when its
    rules pin tactics."""
    out = []
    for t in facts.index.tactics:
        in_t = [r for r in rows if t.shortname in r.tactics]
        if not in_t and scope.tactics:
            continue
        covered = sum(
            1
            for r in in_t
            if (r.tactic_scores.get(t.shortname, r.score) if r.tactic_scores else r.score) > 0
        )
        out.append(
            GroupCount(
                key=t.shortname,
                name=t.name,
                total=len(in_t),
                covered=covered,
                percent=percent(covered, len(in_t)),
                effective=_effective(in_t),
            )
        )
    return out


def _by_platform(rows: list[TechniqueCoverage]) -> list[GroupCount]:
    out = []
    for p in sorted({p for r in rows for p in r.platforms}):
        mine = [r for r in rows if p in r.platforms]
        out.append(
            GroupCount(key=p, name=p, effective=_effective(mine), **_count(mine).model_dump())
        )
    return out


def _effective(rows: list[TechniqueCoverage]) -> int | None:
    """Techniques whose state is effective; None without an environment."""
    if not rows or rows[0].state is None:
        return None
    return sum(1 for r in rows if r.state == "effective")


def _covers(r: TechniqueCoverage) -> bool:
    """Covered, or with an environment effective: a rule that cannot fire covers nothing."""
    return r.covered if r.state is None else r.state == "effective"


def _by_catalog(
    session: Session, scope: Scope, rows: list[TechniqueCoverage], weights: CoverageWeights
) -> list[CatalogCount]:
    in_scope = {r.id for r in rows}
    out = []
    for cat in scope.catalogs:
        cw = catalog_mappings(session, catalog=cat, weights=weights)
        techs = cw.covered & in_scope
        out.append(
            CatalogCount(
                catalog=cat.name,
                rules=cat.rule_count,
                rules_mapped=cw.mapped_rules,
                techniques_covered=len(techs),
                percent=percent(len(techs), len(in_scope)),
            )
        )
    return out


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
    env = scope.environment.telemetry if scope.environment else None
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
                collected_on=None
                if env is None
                else [s.name for s in env.systems if dc.lower() in s.components],
            )
        )
    return sorted(out, key=lambda d: (-d.uncovered, d.name))


def by_detection_strategy(
    session: Session, *, scope: Scope, weights: CoverageWeights
) -> list[DetectionStrategyCount]:
    """For each detection strategy: the techniques it detects in scope, and whether any is
    covered."""
    rows = {r.id: r for r in technique_rows(session, scope=scope, weights=weights)}
    facts = release_facts(session, release=scope.release)
    per: dict[tuple[str | None, str], list[str]] = defaultdict(list)
    for tid in rows:
        for s in facts.strategies.get(tid, ()):
            per[s].append(tid)
    return [
        DetectionStrategyCount(
            id=k[0],
            name=k[1],
            techniques=sorted(v),
            covered=any(rows[t].covered for t in v),
            effective=None
            if scope.environment is None
            else any(rows[t].state == "effective" for t in v),
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
        ca, cb = _covers(ra[tid]), _covers(rb[tid])
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


def compare_catalogs(
    session: Session, *, scope: Scope, a: Sequence[str], b: Sequence[str], weights: CoverageWeights
) -> CatalogComparison:
    """Compare catalog sets `a` and `b` under the scope's release and filters."""
    sa, sb = (
        make_scope(
            session,
            release=scope.release,
            catalogs=split_values(names),
            platforms=scope.platforms,
            tactics=scope.tactics,
            threat=scope.threat,
        )
        for names in (a, b)
    )
    sa.environment = sb.environment = scope.environment
    return compare(session, a=sa, b=sb, weights=weights)
