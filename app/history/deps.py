"""The history scope a request names: one catalog, one environment, or every catalog of a domain,
with tactic and platform filters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from app.attack.deps import DomainQuery
from app.core.deps import SessionDep
from app.environment.deps import EnvironmentQuery
from app.history import service as history_service
from app.history.models import HistoryScope

CatalogQuery = Annotated[
    str | None,
    Query(
        max_length=80,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="one catalog's history (deleted catalogs included); none: every catalog",
    ),
]
ListQuery = Annotated[list[str] | None, Query(max_length=20)]


def get_history_scope(
    session: SessionDep,
    catalog: CatalogQuery = None,
    environment: EnvironmentQuery = None,
    domain: DomainQuery = None,
    tactic: ListQuery = None,
    platform: ListQuery = None,
) -> HistoryScope:
    return history_service.resolve_scope(
        session,
        catalog=catalog,
        environment=environment,
        domain=domain,
        tactics=tactic,
        platforms=platform,
    )


HistoryScopeDep = Annotated[HistoryScope, Depends(get_history_scope)]
