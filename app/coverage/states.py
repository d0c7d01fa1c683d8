"""Effective coverage summed up: techniques per state, by tactic, platform, system and catalog.

Read off the per-technique rows (`techniques.py`), whose `state` the environment's judge set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlmodel import Session

from app.coverage.effective import Judge, Verdict, count_states, rule_counts
from app.coverage.models import (
    CatalogEffect,
    EffectiveSummary,
    StateCount,
    SystemCount,
    TechniqueCoverage,
)
from app.coverage.scoring import percent

if TYPE_CHECKING:
    from app.coverage.facts import ReleaseFacts
    from app.coverage.scope import EnvironmentScope, Scope
    from app.coverage.techniques import Computed


def state_count(key: str, name: str, rows: Iterable[TechniqueCoverage]) -> StateCount:
    rows = list(rows)
    counts = count_states(r.state for r in rows)
    return StateCount(
        key=key,
        name=name,
        total=len(rows),
        percent=percent(counts["effective"], len(rows)),
        **counts,
    )


def effective_summary(session: Session, *, scope: Scope, done: Computed) -> EffectiveSummary | None:
    """The summary's environment block; None without an environment."""
    env, judge, facts, rows = scope.environment, done.judge, done.facts, done.rows
    if env is None or judge is None:
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
        by_system=_by_system(judge, rows, done.verdicts),
        by_catalog=_by_catalog(session, scope, env, facts, rows),
    )


def _by_system(
    judge: Judge, rows: list[TechniqueCoverage], verdicts: dict[str, Verdict]
) -> list[SystemCount]:
    """Per system: techniques on its platforms, effective through its telemetry, visible through
    it. Rows share few distinct masks, so counting goes mask by mask, not row by system."""
    reach = judge.reach
    running: dict[frozenset[str], int] = {}
    collectors: dict[str, int] = {}
    on, effective, visible = Counter[int](), Counter[int](), Counter[int]()
    for r in rows:
        plats = frozenset(p.lower() for p in r.platforms) - {"none"}
        if plats not in running:
            running[plats] = reach.running(plats)
        v = verdicts[r.id]
        seen = 0
        for dc in v.visible:
            low = dc.lower()
            if low not in collectors:
                collectors[low] = reach.collectors(low)
            seen |= collectors[low]
        on[running[plats]] += 1
        effective[v.systems] += 1
        visible[seen & running[plats]] += 1
    totals = [_per_bit(c, len(reach.env.systems)) for c in (on, effective, visible)]
    return [
        SystemCount(
            name=s.name,
            platforms=sorted(s.platforms),
            data_components=len(s.components),
            total=totals[0][i],
            effective=totals[1][i],
            visible=totals[2][i],
            percent=percent(totals[1][i], totals[0][i]),
        )
        for i, s in enumerate(reach.env.systems)
    ]


def _per_bit(masks: Counter[int], n: int) -> list[int]:
    """How many rows have each bit set, from the count of each distinct mask."""
    out = [0] * n
    for mask, k in masks.items():
        i = 0
        while mask:
            if mask & 1:
                out[i] += k
            mask >>= 1
            i += 1
    return out


def _by_catalog(
    session: Session,
    scope: Scope,
    env: EnvironmentScope,
    facts: ReleaseFacts,
    rows: list[TechniqueCoverage],
) -> list[CatalogEffect]:
    """Per catalog: its rules by whether they can fire, and the techniques they make effective."""
    known = frozenset(p.lower() for i in facts.index.techniques.values() for p in i.platforms)
    out = []
    for c in scope.catalogs:
        firing, silent, unknown = rule_counts(session, catalog=c, env=env, known=known)
        effective = _effective_from(c.name, rows)
        out.append(
            CatalogEffect(
                catalog=c.name,
                rules_firing=firing,
                rules_without_telemetry=silent,
                rules_unknown=unknown,
                techniques_effective=effective,
                percent=percent(effective, len(rows)),
            )
        )
    return out


def _effective_from(catalog: str, rows: list[TechniqueCoverage]) -> int:
    return sum(
        1 for r in rows if r.state == "effective" and catalog in (r.effective_catalogs or ())
    )
