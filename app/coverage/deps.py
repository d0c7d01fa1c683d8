"""The coverage scope a request names: release, catalogs, platforms, tactics, threat, and the
environment whose telemetry decides which rules can fire (a query parameter, or the path's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query
from sqlmodel import Session

from app.attack.deps import DomainQuery, VersionQuery
from app.catalog.deps import CatalogsQuery
from app.core.config import Settings
from app.core.deps import SessionDep, SettingsDep
from app.coverage import service as coverage_service
from app.coverage.service import Scope
from app.environment.deps import EnvironmentPath, EnvironmentQuery


@dataclass(frozen=True)
class Filters:
    """The scope's query parameters, as given."""

    domain: str | None
    version: str | None
    catalog: list[str] | None
    platform: list[str] | None
    tactic: list[str] | None
    groups: list[str] | None


def get_filters(
    domain: DomainQuery = None,
    version: VersionQuery = None,
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
) -> Filters:
    return Filters(domain, version, catalog, platform, tactic, groups)


FiltersDep = Annotated[Filters, Depends(get_filters)]


def _scope(session: Session, settings: Settings, f: Filters, environment: str | None) -> Scope:
    """Release (by default the environment's domain), catalogs, filters, environment."""
    return coverage_service.make_scope(
        session,
        domain=f.domain,
        version=f.version,
        catalogs=f.catalog,
        platforms=f.platform,
        tactics=f.tactic,
        threat=f.groups,
        environment=environment,
        kb_dir=settings.kb_dir,
    )


def get_scope(
    session: SessionDep,
    settings: SettingsDep,
    filters: FiltersDep,
    environment: EnvironmentQuery = None,
) -> Scope:
    """The question every coverage call answers."""
    return _scope(session, settings, filters, environment)


def get_environment_scope(
    session: SessionDep, settings: SettingsDep, filters: FiltersDep, name: EnvironmentPath
) -> Scope:
    """The same question about the environment the path names (`/environments/{name}/…`)."""
    return _scope(session, settings, filters, name)


ScopeDep = Annotated[Scope, Depends(get_scope)]
EnvironmentScopeDep = Annotated[Scope, Depends(get_environment_scope)]
