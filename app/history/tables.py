"""History tables: a snapshot per change, the scopes it recomputed, and per technique only what
changed (`coverage_delta`), beside the latest value of every scope (`coverage_current`) that the
next change is compared with. Storage grows with what changed, not with the matrix.

A *scope* is one coverage question the history follows: `all:<domain>` (every catalog on the
domain's newest release), `catalog:<name>` (one catalog on its own release) and
`environment:<name>` (every catalog, judged in the environment).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, Text
from sqlmodel import Field, SQLModel


class CoverageSnapshot(SQLModel, table=True):
    __tablename__ = "coverage_snapshot"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    cause: str  # one of core.changes.CAUSES, or "logbook" (a date of an imported score logbook)
    actor: str = ""  # from the audit event; "" when the change had none (a script)
    audit_event_id: int | None = None  # the event's id (events are pruned; the actor stays)
    domain: str
    catalog: str | None = None
    environment: str | None = None
    release: str | None = None  # "enterprise 18.1": an ingest's, an upgrade's target


def _snapshot_fk() -> Column[int]:
    return Column(Integer, ForeignKey("coverage_snapshot.id", ondelete="CASCADE"), nullable=False)


class CoverageSnapshotScope(SQLModel, table=True):
    """A scope a snapshot recomputed: the release it was read on and its totals then."""

    __tablename__ = "coverage_snapshot_scope"
    __table_args__ = (Index("ix_coverage_snapshot_scope_scope", "scope", "snapshot_id"),)

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: int = Field(sa_column=_snapshot_fk())
    scope: str
    release: str  # "enterprise 18.1"
    covered: int
    effective: int | None = None  # environment scopes only


class CoverageDelta(SQLModel, table=True):
    """One technique whose value in one scope a snapshot changed, and why."""

    __tablename__ = "coverage_delta"
    __table_args__ = (Index("ix_coverage_delta_scope", "scope", "snapshot_id"),)

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: int = Field(sa_column=_snapshot_fk())
    scope: str
    technique: str
    score: float  # 0: not covered
    state: str | None = None  # an environment scope's effective state; None elsewhere
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class CoverageCurrent(SQLModel, table=True):
    """The latest value of every covered technique per scope: what the next change compares."""

    __tablename__ = "coverage_current"

    scope: str = Field(primary_key=True)
    technique: str = Field(primary_key=True)
    score: float
    state: str | None = None
