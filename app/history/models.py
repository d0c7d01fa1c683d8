"""History API shapes: points of a scope's coverage over time, and the changes since a point."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from app.core.api_model import ApiModel

CHANGE_KINDS = ("gained", "lost", "effective_gained", "effective_lost", "score_up", "score_down")
ChangeKind = Literal[
    "gained", "lost", "effective_gained", "effective_lost", "score_up", "score_down"
]


class Cause(ApiModel):
    """What made a snapshot: the change (one of core.changes.CAUSES, or `logbook`), who (the audit
    log's actor; "" for a script) and what it touched."""

    snapshot: int
    at: datetime
    cause: str
    actor: str
    audit_event: int | None
    catalog: str | None
    environment: str | None
    release: str | None


class Tactic(ApiModel):
    tactic: str  # shortname, the key of a point's counts
    name: str


class HistoryPoint(ApiModel):
    at: datetime
    cause: Cause
    release: str  # the release the scope was read on then ("enterprise 18.1")
    covered: int
    effective: int | None  # environment scopes only
    covered_by_tactic: dict[str, int]  # tactic shortname → covered techniques (a technique
    effective_by_tactic: dict[str, int] | None  # counts under each of its tactics)


class HistoryScope(ApiModel):
    """Which coverage a history follows: `all:<domain>`, `catalog:<name>`, `environment:<name>`."""

    scope: str
    domain: str
    catalog: str | None = None
    environment: str | None = None
    tactics: list[str] = Field(default_factory=list)
    platforms: list[str] = Field(default_factory=list)


class CoverageHistory(ApiModel):
    scope: HistoryScope
    tactics: list[Tactic]  # of the newest point's release, in matrix order (the filter's only)
    points: list[HistoryPoint]


class TechniqueChange(ApiModel):
    """One technique's coverage moved by one snapshot, and why."""

    technique: str
    name: str
    change: ChangeKind
    score_before: float
    score_after: float
    state_before: str | None
    state_after: str | None
    reason: str
    cause: Cause


class CoverageChanges(ApiModel):
    scope: HistoryScope
    since: Cause | None  # the point the changes are counted after (None: from the beginning)
    gained: int  # entries of each kind, in order
    lost: int
    total: int  # entries in all; `items` is the page `limit` and `offset` asked for (a Page)
    limit: int
    offset: int
    items: list[TechniqueChange]
    net_gained: list[str]  # covered now and not at `since`
    net_lost: list[str]  # covered at `since` and not now
