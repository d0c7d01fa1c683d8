"""Coverage over time: one point per snapshot of the scope, with its cause, its covered (and, in
an environment, effective) count, overall and per tactic, filters applied. Counts move by each
point's deltas; a point read on another release is recounted under that release's tactics."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlmodel import Session

from app.history.models import Cause, CoverageHistory, HistoryPoint, HistoryScope, Tactic
from app.history.reasons import Value
from app.history.scopes import Filter, Point, Recorded, aware, recorded, since_position


class _Counts:
    """Covered and effective techniques, overall and per tactic, as deltas move them."""

    def __init__(self, keep: Filter) -> None:
        self.keep = keep
        self.covered = self.effective = 0
        self.by_tactic: Counter[str] = Counter()
        self.effective_by_tactic: Counter[str] = Counter()

    def move(self, technique: str, value: Value | None, sign: int) -> None:
        tactics = self.keep.tactics_of(technique) if value else None
        if tactics is None or value is None:
            return
        effective = value[1] == "effective"
        self.covered += sign
        self.effective += sign * effective
        for t in tactics:
            self.by_tactic[t] += sign
            self.effective_by_tactic[t] += sign * effective

    def recount(self, state: dict[str, Value]) -> None:
        self.__init__(self.keep)  # type: ignore[misc]  # same filter, counts from nothing
        for technique, value in state.items():
            self.move(technique, value, 1)


def coverage_history(
    session: Session,
    *,
    scope: HistoryScope,
    start: datetime | None = None,
    end: datetime | None = None,
) -> CoverageHistory:
    """The scope's points from `start` to `end` (inclusive; both optional), oldest first."""
    rec = recorded(session, scope)
    keep = Filter(session, scope)
    counts = _Counts(keep)
    state: dict[str, Value] = {}
    out: list[HistoryPoint] = []
    for point in rec.points:
        changed_release = keep.read_on(point.release)
        for d in rec.deltas.get(point.cause.snapshot, ()):
            counts.move(d.technique, state.get(d.technique), -1)
            _set(state, d.technique, d.value)
            counts.move(d.technique, d.value, 1)
        if changed_release:
            counts.recount(state)
        if _within(point, start, end):
            out.append(
                _point(point, counts, _shortnames(keep), judged=scope.environment is not None)
            )
    return CoverageHistory(scope=scope, tactics=_tactics(keep), points=out)


def _set(state: dict[str, Value], technique: str, value: Value | None) -> None:
    if value is None:
        state.pop(technique, None)
    else:
        state[technique] = value


def _within(point: Point, start: datetime | None, end: datetime | None) -> bool:
    at = aware(point.cause.at)
    return (start is None or at >= aware(start)) and (end is None or at <= aware(end))


def _point(point: Point, counts: _Counts, tactics: list[str], *, judged: bool) -> HistoryPoint:
    """Built without validation (the counts are ints by construction): a year of points is
    ~370 of them, each with a count per tactic."""
    return HistoryPoint.model_construct(
        at=point.cause.at,
        cause=point.cause,
        release=point.release,
        covered=counts.covered,
        effective=counts.effective if judged else None,
        covered_by_tactic={t: counts.by_tactic[t] for t in tactics},
        effective_by_tactic=(
            {t: counts.effective_by_tactic[t] for t in tactics} if judged else None
        ),
    )


def _shortnames(keep: Filter) -> list[str]:
    """The point's release's tactics (the filter's only), in matrix order."""
    tactics = keep.index.tactics if keep.index else []
    return [t.shortname for t in tactics if not keep.tactics or t.shortname in keep.tactics]


def _tactics(keep: Filter) -> list[Tactic]:
    tactics = keep.index.tactics if keep.index else []
    return [
        Tactic(tactic=t.shortname, name=t.name)
        for t in tactics
        if not keep.tactics or t.shortname in keep.tactics
    ]


def state_at(
    session: Session, *, scope: HistoryScope, snapshot: int | None, field: str = "snapshot"
) -> dict[str, Value]:
    """Each covered technique's (score, state) just after `snapshot` (a point of the scope;
    None: now). A snapshot that is not a point of the scope is NotFound listing its points."""
    rec = recorded(session, scope)
    if snapshot is None:
        return _fold(rec, len(rec.points))
    upto = since_position(rec.points, str(snapshot), field=field)
    return _fold(rec, upto)


def before_last(session: Session, *, scope: HistoryScope) -> tuple[Cause | None, dict[str, Value]]:
    """The scope's last point, and each covered technique's value just before it: what
    `kbmap check --no-loss` compares with when it is given no baseline file."""
    rec = recorded(session, scope)
    if not rec.points:
        return None, {}
    return rec.points[-1].cause, _fold(rec, len(rec.points) - 1)


def _fold(rec: Recorded, upto: int) -> dict[str, Value]:
    state: dict[str, Value] = {}
    for point in rec.points[:upto]:
        for d in rec.deltas.get(point.cause.snapshot, ()):
            _set(state, d.technique, d.value)
    return state
