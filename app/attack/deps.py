"""The release a request is about: named by domain and version, else the newest of the domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from app.attack import service as attack_service
from app.attack.tables import Release
from app.core.deps import SessionDep

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
