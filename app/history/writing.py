"""Writing a snapshot: its row, and per scope the deltas against the scope's current values,
the current values moved, and the scope's totals. Shared by the recorder and the logbook."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, select
from sqlmodel import Session, col

from app.core.db import bulk_insert
from app.history.reasons import ReasonContext, Value, reason
from app.history.tables import (
    CoverageCurrent,
    CoverageDelta,
    CoverageSnapshot,
    CoverageSnapshotScope,
)

if TYPE_CHECKING:
    from app.auth.models import AuditEventRead
    from app.core.changes import Change

_CURRENT = select(
    col(CoverageCurrent.technique), col(CoverageCurrent.score), col(CoverageCurrent.state)
).where(col(CoverageCurrent.scope) == bindparam("scope"))
_DROP_CURRENT = delete(CoverageCurrent).where(
    col(CoverageCurrent.scope) == bindparam("scope"),
    col(CoverageCurrent.technique).in_(bindparam("techniques", expanding=True)),
)
_DELTA_COLUMNS = ("snapshot_id", "scope", "technique", "score", "state", "reason")
_CURRENT_COLUMNS = ("scope", "technique", "score", "state")


@dataclass(frozen=True)
class ScopeValues:
    """One scope recomputed: its key, the release it was read on, each covered technique."""

    key: str
    release: str  # "enterprise 18.1"
    values: dict[str, Value]
    environment: bool


def write_snapshot(
    session: Session, change: Change, event: AuditEventRead | None, at: datetime
) -> CoverageSnapshot:
    snapshot = CoverageSnapshot(
        at=at,
        cause=change.cause,
        actor=event.actor if event else "",
        audit_event_id=event.id if event else None,
        domain=change.domain,
        catalog=change.catalog,
        environment=change.environment,
        release=change.release,
    )
    session.add(snapshot)
    session.flush()
    return snapshot


def has_history(session: Session, scope: str) -> bool:
    query = select(col(CoverageSnapshotScope.id)).where(col(CoverageSnapshotScope.scope) == scope)
    return session.execute(query.limit(1)).first() is not None


def current_values(session: Session, scope: str) -> dict[str, Value]:
    return {t: (s, st) for t, s, st in session.execute(_CURRENT, {"scope": scope})}


def write_scope(session: Session, snapshot_id: int, scope: ScopeValues, ctx: ReasonContext) -> None:
    """The techniques whose value moved, with their reasons; then the scope's totals."""
    old, new = current_values(session, scope.key), scope.values
    moved = sorted(t for t in old.keys() | new.keys() if old.get(t) != new.get(t))
    connection = session.connection()
    deltas = [
        (
            snapshot_id,
            scope.key,
            t,
            *(new.get(t) or (0.0, None)),
            reason(ctx, t, old.get(t), new.get(t)),
        )
        for t in moved
    ]
    bulk_insert(connection, CoverageDelta.__tablename__, _DELTA_COLUMNS, deltas)
    if moved:
        session.execute(_DROP_CURRENT, {"scope": scope.key, "techniques": moved})
    kept = [(scope.key, t, *new[t]) for t in moved if t in new]
    bulk_insert(connection, CoverageCurrent.__tablename__, _CURRENT_COLUMNS, kept)
    effective = sum(1 for _score, state in new.values() if state == "effective")
    session.add(
        CoverageSnapshotScope(
            snapshot_id=snapshot_id,
            scope=scope.key,
            release=scope.release,
            covered=len(new),
            effective=effective if scope.environment else None,
        )
    )
    session.flush()
