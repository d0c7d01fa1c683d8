"""The coverage scope a request names: release, catalogs, platforms, tactics, threat, and the
environment whose telemetry decides which rules can fire."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from app.attack.deps import ReleaseDep
from app.catalog.deps import CatalogsQuery
from app.core.deps import SessionDep, SettingsDep
from app.coverage import service as coverage_service
from app.coverage.service import Scope
from app.environment.deps import EnvironmentQuery


def get_scope(
    session: SessionDep,
    settings: SettingsDep,
    release: ReleaseDep,
    catalog: CatalogsQuery = None,
    platform: Annotated[
        list[str] | None, Query(max_length=20, description="platform(s), any case")
    ] = None,
    tactic: Annotated[
        list[str] | None,
        Query(max_length=20, description="tactic(s): shortname, name or id (TA0008)"),
    ] = None,
    groups: Annotated[
        list[str] | None,
        Query(
            max_length=50,
            description="groups, software, campaigns by id, name or alias (G0016,APT29,C0024)",
        ),
    ] = None,
    environment: EnvironmentQuery = None,
) -> Scope:
    """The question every coverage call answers: release, catalogs, platforms, tactics, threat."""
    return coverage_service.make_scope(
        session,
        release=release,
        catalogs=catalog,
        platforms=platform,
        tactics=tactic,
        threat=groups,
        environment=environment,
        kb_dir=settings.kb_dir,
    )


ScopeDep = Annotated[Scope, Depends(get_scope)]
