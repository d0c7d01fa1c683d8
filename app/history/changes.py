"""What changed since a point: every technique a later snapshot moved, in order, with its kind
(gained, lost, effective gained or lost, score up or down) and its reason; and the net result
(covered now and not then, and the reverse)."""

from __future__ import annotations

from typing import NamedTuple

from sqlmodel import Session

from app.history.models import ChangeKind, CoverageChanges, HistoryScope, TechniqueChange
from app.history.reasons import Value
from app.history.scopes import Delta, Filter, Point, recorded, since_position


def coverage_changes(
    session: Session,
    *,
    scope: HistoryScope,
    since: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> CoverageChanges:
    """Changes after `since` (a snapshot id, a date or a time; none: from the beginning), the
    page `limit`, `offset` of them; the counts and the net result are of all."""
    rec = recorded(session, scope)
    start = since_position(rec.points, since)
    keep = Filter(session, scope)
    state: dict[str, Value] = {}
    changes: list[_Moved] = []  # objects are built for the page only
    then: dict[str, Value] = {}
    for i, point in enumerate(rec.points):
        if i == start:
            then = dict(state)
        keep.read_on(point.release)
        for d in rec.deltas.get(point.cause.snapshot, ()):
            old = state.get(d.technique)
            moved = old != d.value  # a bucket retention merged may end where it began
            if moved and i >= start and keep.tactics_of(d.technique) is not None:
                changes.append(
                    _Moved(_kind(old, d.value), d, old, point, keep.name_of(d.technique))
                )
            _apply(state, d)
    if start >= len(rec.points):
        then = dict(state)
    return CoverageChanges(
        scope=scope,
        since=rec.points[start - 1].cause if start else None,
        gained=sum(1 for c in changes if c.kind == "gained"),
        lost=sum(1 for c in changes if c.kind == "lost"),
        total=len(changes),
        limit=limit,
        offset=offset,
        items=[_change(m) for m in changes[offset : offset + limit]],
        net_gained=sorted(t for t in state if t not in then and _kept(keep, t)),
        net_lost=sorted(t for t in then if t not in state and _kept(keep, t)),
    )


def _kept(keep: Filter, technique: str) -> bool:
    return keep.tactics_of(technique) is not None


def _apply(state: dict[str, Value], d: Delta) -> None:
    if d.value is None:
        state.pop(d.technique, None)
    else:
        state[d.technique] = d.value


class _Moved(NamedTuple):
    kind: ChangeKind
    delta: Delta
    old: Value | None
    point: Point
    name: str


def _change(m: _Moved) -> TechniqueChange:
    before, after = m.old or (0.0, None), m.delta.value or (0.0, None)
    return TechniqueChange(
        technique=m.delta.technique,
        name=m.name,
        change=m.kind,
        score_before=before[0],
        score_after=after[0],
        state_before=before[1],
        state_after=after[1],
        reason=m.delta.reason,
        cause=m.point.cause,
    )


def _kind(old: Value | None, new: Value | None) -> ChangeKind:
    if old is None:
        return "gained"
    if new is None:
        return "lost"
    if old[1] != new[1] and "effective" in (old[1], new[1]):
        return "effective_gained" if new[1] == "effective" else "effective_lost"
    return "score_up" if new[0] > old[0] else "score_down"
