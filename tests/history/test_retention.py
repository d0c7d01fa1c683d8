"""Retention: past N days one snapshot a day, past 2N one an ISO week, each bucket's last kept;
the fold of the history ends where it did and every reason of a removed snapshot survives.

Snapshots are written backdated through the history's own writers on a real database (both
backends); what thinning must keep is worked out here from the times alone."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from app.core.changes import Change
from app.core.db import make_engine
from app.history import service as history_service
from app.history.models import HistoryScope
from app.history.reasons import ReasonContext, Value
from app.history.retention import thin
from app.history.tables import CoverageDelta, CoverageSnapshot, CoverageSnapshotScope
from app.history.writing import ScopeValues, current_values, write_scope, write_snapshot
from tests.history.conftest import copy_of_loaded

NOW = datetime(2026, 6, 17, 12, 0, tzinfo=UTC)  # a Wednesday, noon
KEEP_DAYS = 2
SCOPES = ("catalog:c", "all:enterprise")
TECHNIQUES = [f"T{1000 + i}" for i in range(15)]


def _times(rng: random.Random) -> list[datetime]:
    """Several snapshots on some days, none on others, over five weeks; a few within N days."""
    times = [NOW - timedelta(hours=h) for h in rng.sample(range(1, 24 * 36), 70)]
    return sorted([*times, NOW - timedelta(minutes=5), NOW - timedelta(days=KEEP_DAYS, hours=1)])


def _moved(rng: random.Random, old: dict[str, Value]) -> dict[str, Value]:
    new = dict(old)
    for t in rng.sample(TECHNIQUES, rng.randint(1, 3)):
        if t in new and rng.random() < 0.5:
            del new[t]
        else:
            new[t] = (float(rng.randint(1, 100)), None)
    return new


def _write(engine: Engine, rng: random.Random) -> list[tuple[int, datetime]]:
    """Snapshots at the times, each moving a few techniques of both scopes, every reason unique."""
    written = []
    with Session(engine) as session:
        for i, at in enumerate(_times(rng)):
            snapshot = write_snapshot(
                session, Change("catalog_import", "enterprise", "c"), None, at
            )
            for key in SCOPES:
                values = _moved(rng, current_values(session, key))
                why = ReasonContext(Change("catalog_delete", "enterprise", f"c{i}-{key}"))
                scope = ScopeValues(key, "enterprise 18.1", values, environment=False)
                write_scope(session, snapshot.id or 0, scope, why)
            written.append((snapshot.id or 0, at))
        session.commit()
    return written


def _expected_kept(written: list[tuple[int, datetime]]) -> set[int]:
    """Within N days every snapshot; then per UTC day, then per ISO week, the last."""
    buckets: dict[object, tuple[datetime, int]] = {}
    for sid, at in written:
        age = NOW - at
        if age <= timedelta(days=KEEP_DAYS):
            key: object = sid
        elif age <= timedelta(days=2 * KEEP_DAYS):
            key = at.date()
        else:
            key = at.isocalendar()[:2]
        buckets[key] = max(buckets.get(key, (at, sid)), (at, sid))
    return {sid for _, sid in buckets.values()}


def _state(session: Session) -> dict[str, dict[str, Value]]:
    return {
        key: history_service.state_at(
            session, scope=HistoryScope(scope=key, domain="enterprise"), snapshot=None
        )
        for key in SCOPES
    }


def _deltas(session: Session) -> list[tuple[int, str, str, str]]:
    rows = session.execute(
        select(
            col(CoverageDelta.snapshot_id),
            col(CoverageDelta.scope),
            col(CoverageDelta.technique),
            col(CoverageDelta.reason),
        )
    )
    return [(sid, scope, technique, why) for sid, scope, technique, why in rows]


def test_thinning_keeps_one_a_day_then_one_a_week(empty_engine: Engine) -> None:
    written = _write(empty_engine, random.Random(16))
    expected = _expected_kept(written)
    assert len(written) > len(expected) > 10
    with Session(empty_engine) as session:
        state = _state(session)
        deltas = _deltas(session)
        removed = thin(session, keep_days=KEEP_DAYS, now=NOW)
        session.commit()
    with Session(empty_engine) as session:
        kept = set(session.execute(select(col(CoverageSnapshot.id))).scalars())
        assert kept == expected and removed == len(written) - len(expected)
        assert _state(session) == state
        after = _deltas(session)
        for sid, key, technique, why in deltas:
            if sid not in kept:
                assert any(
                    k == key and t == technique and why in w.split("; ") for _, k, t, w in after
                ), (sid, key, technique, why)
        assert {sid for sid, *_ in after} <= kept
        _assert_totals(session, kept)


def _assert_totals(session: Session, kept: set[int]) -> None:
    """Each kept snapshot's totals are the covered count of the fold just after it."""
    rows = session.execute(
        select(
            col(CoverageSnapshotScope.snapshot_id),
            col(CoverageSnapshotScope.scope),
            col(CoverageSnapshotScope.covered),
        )
    ).all()
    assert {(sid, key) for sid, key, _ in rows} == {(sid, key) for sid in kept for key in SCOPES}
    for sid, key, covered in rows:
        scope = HistoryScope(scope=key, domain="enterprise")
        assert covered == len(history_service.state_at(session, scope=scope, snapshot=sid))


def test_nothing_is_thinned_within_the_kept_days(empty_engine: Engine) -> None:
    written = _write(empty_engine, random.Random(3))
    with Session(empty_engine) as session:  # every snapshot is at most 36 days old
        assert thin(session, keep_days=37, now=NOW) == 0
        session.rollback()
        assert len(session.execute(select(col(CoverageSnapshot.id))).all()) == len(written)


def test_a_bucket_that_ends_where_it_began_lists_no_change(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Gained then lost (and up then back down) within one thinned day: the merged snapshot moves
    nothing, so /changes lists nothing for it (not a "gained" from 0 to 0, nor a "score_down" to
    the same score)."""
    engine = make_engine(copy_of_loaded("sqlite", request, tmp_path))
    day = NOW - timedelta(days=KEEP_DAYS + 1, hours=3)
    steps: list[dict[str, Value]] = [
        {"T1059.001": (20.0, None)},  # before the bucket
        {"T1059.001": (40.0, None), "T1053.005": (10.0, None)},  # in it
        {"T1059.001": (20.0, None)},  # in it: back where it began
    ]
    with Session(engine) as session:
        for i, values in enumerate(steps):
            at = day - timedelta(days=2) if i == 0 else day + timedelta(minutes=i)
            snapshot = write_snapshot(
                session, Change("catalog_import", "enterprise", "c"), None, at
            )
            why = ReasonContext(Change("catalog_delete", "enterprise", f"c{i}"))
            values_of = ScopeValues("catalog:c", "enterprise 18.1", values, environment=False)
            write_scope(session, snapshot.id or 0, values_of, why)
        assert thin(session, keep_days=KEEP_DAYS, now=NOW) == 1
        session.commit()
        scope = HistoryScope(scope="catalog:c", domain="enterprise")
        first = history_service.coverage_history(session, scope=scope).points[0]
        moved = history_service.coverage_changes(
            session, scope=scope, since=str(first.cause.snapshot)
        )
    engine.dispose()
    assert [(c.technique, c.change) for c in moved.items] == []
    assert moved.net_gained == moved.net_lost == []
