"""Effective coverage summed up: techniques per state, by tactic, platform, system and catalog.

Read off the per-technique rows (`techniques.py`), whose `state` the environment's judge set.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlmodel import Session

from app.coverage.effective import catalog_needs, count_states, reach_of
from app.coverage.models import (
    CatalogEffect,
    EffectiveSummary,
    StateCount,
    SystemCount,
    TechniqueCoverage,
)

if TYPE_CHECKING:
    from app.coverage.facts import ReleaseFacts
    from app.coverage.scope import EnvironmentScope, Scope
    from app.environment.service import SystemTelemetry


def _percent(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def state_count(key: str, name: str, rows: Iterable[TechniqueCoverage]) -> StateCount:
    rows = list(rows)
    counts = count_states(r.state for r in rows)
    return StateCount(
        key=key,
        name=name,
        total=len(rows),
        percent=_percent(counts["effective"], len(rows)),
        **counts,
    )


def effective_summary(
    session: Session, *, scope: Scope, facts: ReleaseFacts, rows: list[TechniqueCoverage]
) -> EffectiveSummary | None:
    """The summary's environment block; None without an environment."""
    env = scope.environment
    if env is None:
        return None
    return EffectiveSummary(
        environment=env.telemetry.name,
        all=state_count("all", "all", rows),
        techniques=state_count(
            "techniques", "techniques", (r for r in rows if not r.is_subtechnique)
        ),
        subtechniques=state_count(
            "subtechniques", "sub-techniques", (r for r in rows if r.is_subtechnique)
        ),
        by_tactic=[
            state_count(t.shortname, t.name, (r for r in rows if t.shortname in r.tactics))
            for t in facts.index.tactics
            if not scope.tactics or t.shortname in scope.tactics
        ],
        by_platform=[
            state_count(p, p, (r for r in rows if p in r.platforms))
            for p in sorted({p for r in rows for p in r.platforms})
        ],
        by_system=[_system(s, rows) for s in env.telemetry.systems],
        by_catalog=_by_catalog(session, scope, env, facts, rows),
    )


def _system(s: SystemTelemetry, rows: list[TechniqueCoverage]) -> SystemCount:
    """What one system's telemetry makes effective and visible, among techniques it runs."""
    mine = [r for r in rows if _runs(s, r)]
    effective = sum(1 for r in mine if s.name in (r.systems or ()))
    visible = sum(
        1 for r in mine if any(dc.lower() in s.components for dc in r.visible_data_components or ())
    )
    return SystemCount(
        name=s.name,
        platforms=sorted(s.platforms),
        data_components=len(s.components),
        total=len(mine),
        effective=effective,
        visible=visible,
        percent=_percent(effective, len(mine)),
    )


def _runs(s: SystemTelemetry, r: TechniqueCoverage) -> bool:
    plats = frozenset(p.lower() for p in r.platforms) - {"none"}
    return not plats or bool(plats & s.platforms)


def _by_catalog(
    session: Session,
    scope: Scope,
    env: EnvironmentScope,
    facts: ReleaseFacts,
    rows: list[TechniqueCoverage],
) -> list[CatalogEffect]:
    """Per catalog: its rules by whether they can fire, and the techniques they make effective."""
    known = frozenset(p.lower() for i in facts.index.techniques.values() for p in i.platforms)
    reach = reach_of(session, env.telemetry)
    out = []
    for c in scope.catalogs:
        needs = catalog_needs(session, catalog=c, env=env, known=known)
        firing = sum(1 for n in needs.values() if n.components and reach.fires(n)[0])
        unknown = sum(1 for n in needs.values() if not n.components)
        effective = _effective_from(c.name, rows)
        out.append(
            CatalogEffect(
                catalog=c.name,
                rules_firing=firing,
                rules_without_telemetry=len(needs) - firing - unknown,
                rules_unknown=unknown,
                techniques_effective=effective,
                percent=_percent(effective, len(rows)),
            )
        )
    return out


def _effective_from(catalog: str, rows: list[TechniqueCoverage]) -> int:
    return sum(
        1 for r in rows if r.state == "effective" and catalog in (r.effective_catalogs or ())
    )
