"""Retention (KBMAP_HISTORY_KEEP_DAYS): snapshots older than N days are thinned to one a day, and
older than 2N days to one a week (ISO week). The snapshot kept is the bucket's last; the deltas of
the others move into it, the latest value winning and every reason kept (joined in order), so the
fold of the history still ends where it did and no change loses its why. Unset: keep everything."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select, update
from sqlmodel import Session, col

from app.history.tables import CoverageDelta, CoverageSnapshot, CoverageSnapshotScope

_OLD = (
    select(col(CoverageSnapshot.id), col(CoverageSnapshot.at))
    .where(col(CoverageSnapshot.at) < bindparam("cutoff"))
    .order_by(col(CoverageSnapshot.at), col(CoverageSnapshot.id))
)


def thin(session: Session, *, keep_days: int, now: datetime) -> int:
    """Merge each bucket of old snapshots into its last; how many snapshots were removed."""
    daily, weekly = now - timedelta(days=keep_days), now - timedelta(days=2 * keep_days)
    buckets: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for sid, at in session.execute(_OLD, {"cutoff": daily}):
        at = at if at.tzinfo else at.replace(tzinfo=now.tzinfo)
        year, week, _ = at.isocalendar()
        buckets[(year, week) if at < weekly else (at.year, at.month, at.day)].append(sid)
    removed = 0
    for ids in buckets.values():
        if len(ids) > 1:
            _merge(session, ids[:-1], ids[-1])
            removed += len(ids) - 1
    return removed


def _merge(session: Session, gone: list[int], kept: int) -> None:
    order = {sid: i for i, sid in enumerate([*gone, kept])}
    _merge_deltas(session, order, kept)
    _merge_scopes(session, order, kept)
    session.execute(delete(CoverageSnapshot).where(col(CoverageSnapshot.id).in_(gone)))


def _merge_deltas(session: Session, order: dict[int, int], kept: int) -> None:
    """Per (scope, technique) the bucket's last delta stays, in `kept`, with every reason."""
    rows = session.execute(
        select(
            col(CoverageDelta.id),
            col(CoverageDelta.snapshot_id),
            col(CoverageDelta.scope),
            col(CoverageDelta.technique),
            col(CoverageDelta.reason),
        ).where(col(CoverageDelta.snapshot_id).in_(list(order)))
    ).all()
    groups: dict[tuple[str, str], list[tuple[int, int, str]]] = defaultdict(list)
    for did, sid, scope, technique, why in rows:
        groups[(scope, technique)].append((order[sid], did, why))
    drop: list[int] = []
    for entries in groups.values():
        entries.sort()
        last = entries[-1][1]
        reasons = list(dict.fromkeys(why for _, _, why in entries if why))
        drop += [did for _, did, _ in entries[:-1]]
        session.execute(
            update(CoverageDelta)
            .where(col(CoverageDelta.id) == last)
            .values(snapshot_id=kept, reason="; ".join(reasons))
        )
    if drop:
        session.execute(delete(CoverageDelta).where(col(CoverageDelta.id).in_(drop)))


def _merge_scopes(session: Session, order: dict[int, int], kept: int) -> None:
    """Per scope the bucket's last totals stay, in `kept`."""
    rows = session.execute(
        select(
            col(CoverageSnapshotScope.id),
            col(CoverageSnapshotScope.snapshot_id),
            col(CoverageSnapshotScope.scope),
        ).where(col(CoverageSnapshotScope.snapshot_id).in_(list(order)))
    ).all()
    last: dict[str, tuple[int, int]] = {}
    for rid, sid, scope in rows:
        if scope not in last or order[sid] > last[scope][0]:
            last[scope] = (order[sid], rid)
    keep = {rid for _, rid in last.values()}
    drop = [rid for rid, _, _ in rows if rid not in keep]
    if drop:
        session.execute(
            delete(CoverageSnapshotScope).where(col(CoverageSnapshotScope.id).in_(drop))
        )
    if keep:
        session.execute(
            update(CoverageSnapshotScope)
            .where(col(CoverageSnapshotScope.id).in_(keep))
            .values(snapshot_id=kept)
        )
