"""Named dependencies (Annotated aliases) every route uses: session, settings, release."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.models import Release
from app.core.config import Settings


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session_dep(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session_dep)]

DomainQuery = Annotated[
    str | None,
    Query(
        description="enterprise, mobile or ics; the newest release of it unless version is given",
        max_length=40,
    ),
]
VersionQuery = Annotated[
    str | None, Query(description="ATT&CK release, e.g. 18.1", max_length=20, pattern=r"^\d+\.\d+$")
]


def get_release_dep(
    session: SessionDep, domain: DomainQuery = None, version: VersionQuery = None
) -> Release:
    """One release: the one named, else the newest of the domain (enterprise by default)."""
    return attack_service.get_release(session, domain=domain, version=version)


def get_lookup_releases_dep(
    session: SessionDep, domain: DomainQuery = None, version: VersionQuery = None
) -> list[Release]:
    """Where to look an id up: the named domain, or every domain's default (enterprise first)."""
    return attack_service.releases_for_lookup(session, domain=domain, version=version)


ReleaseDep = Annotated[Release, Depends(get_release_dep)]
LookupReleasesDep = Annotated[list[Release], Depends(get_lookup_releases_dep)]


def page_params(
    settings: SettingsDep,
    limit: Annotated[
        int, Query(ge=1, description="page size (capped by KBMAP_LIMIT_MAX_PAGE)")
    ] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> tuple[int, int]:
    return min(limit, settings.limits.max_page), offset


PageParams = Annotated[tuple[int, int], Depends(page_params)]
QText = Annotated[str | None, Query(max_length=200, description="text in id, name or description")]
IdPath = Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9._-]+$")]
CatalogsQuery = Annotated[
    list[str] | None, Query(max_length=20, description="catalog name (repeatable; default all)")
]
