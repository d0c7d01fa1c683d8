"""History routes: a scope's coverage over time, and what changed since a point."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.core.deps import PageParams, SessionDep
from app.history import service as history_service
from app.history.deps import HistoryScopeDep
from app.history.models import CoverageChanges, CoverageHistory

router = APIRouter()


@router.get("/coverage/history", tags=["history"])
def get_coverage_history(
    session: SessionDep,
    scope: HistoryScopeDep,
    from_: Annotated[datetime | None, Query(alias="from", description="first time kept")] = None,
    to: Annotated[datetime | None, Query(description="last time kept")] = None,
) -> CoverageHistory:
    return history_service.coverage_history(session, scope=scope, start=from_, end=to)


@router.get("/coverage/changes", tags=["history"])
def list_coverage_changes(
    session: SessionDep,
    scope: HistoryScopeDep,
    page: PageParams,
    since: Annotated[
        str | None,
        Query(max_length=40, description="a snapshot id, a date (YYYY-MM-DD) or an ISO time"),
    ] = None,
) -> CoverageChanges:
    return history_service.coverage_changes(
        session, scope=scope, since=since, limit=page[0], offset=page[1]
    )
