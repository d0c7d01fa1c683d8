"""Named dependencies every route uses: session, settings, release, and the scope guards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.api.exposure import exposure_of, public_url, reads_need_token
from app.attack import service as attack_service
from app.attack.models import Release
from app.auth import service as auth_service
from app.auth.models import ApiToken
from app.core.config import Settings
from app.core.db import read_session
from app.core.errors import Forbidden, InvalidInput, Location, Unauthorized
from app.core.security import SCOPES, scope_allows


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session_dep(request: Request) -> Iterator[Session]:
    """One read session per request, on one snapshot (never a mix of two commits)."""
    request.app.state.schema()  # made or upgraded here if the database was down at start
    with read_session(request.app.state.engine) as session:
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


def get_public_url_dep(request: Request, settings: SettingsDep) -> str:
    """Where links point: KBMAP_PUBLIC_URL, else the address this connection reached; never the
    request's Host header, which the client chooses."""
    return public_url(settings, request.scope)


PublicUrlDep = Annotated[str, Depends(get_public_url_dep)]
ReleaseDep = Annotated[Release, Depends(get_release_dep)]
LookupReleasesDep = Annotated[list[Release], Depends(get_lookup_releases_dep)]


async def page_params(
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


# --- Authentication: bearer tokens and scopes (principle 12, secure by default) ---------------

INVALID_TOKEN = "invalid or missing token"  # one message for missing, wrong, unknown, expired
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="kbmap API token, `kbm_…`, made with `kbmap token create`",
)


async def get_token_dep(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiToken | None:
    """The request's verified token; None when none was sent; 401 when the one sent is not live.

    A bad token is refused even where reads are open, so a typo never passes silently as anonymous.
    FastAPI caches this per request, so a route guarded twice (read at the mount, write on the
    route) verifies once. It uses its own short session: the last-use stamp commits here, apart
    from the route's unit of work.
    """
    if credentials is None:
        return None
    token = await run_in_threadpool(_verify, request, credentials.credentials, settings)
    if token is None:
        raise Unauthorized(INVALID_TOKEN)
    return token


def _verify(request: Request, secret: str, settings: Settings) -> ApiToken | None:
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        return auth_service.verify_token(session, secret, settings)


def require_scope(scope: str) -> Callable[..., Awaitable[None]]:
    """A guard: 401 without a live token, 403 when the token ranks below `scope`.

    Reads pass without a token when every address actually bound is loopback, or with
    KBMAP_READ_AUTH=open (`api/exposure.py`); write and admin always need one. The actor (token
    name or "anonymous") goes on `request.state.actor` for the audit log, set before the scope
    check so a 403 is recorded under the token that tried.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def guard(  # async: no I/O here, so no hop to the thread pool on every request
        request: Request,
        settings: SettingsDep,
        token: Annotated[ApiToken | None, Depends(get_token_dep)],
    ) -> None:
        if token is None:
            if scope == "read" and not reads_need_token(settings, exposure_of(request.scope)):
                request.state.actor = "anonymous"
                return
            raise Unauthorized(INVALID_TOKEN)
        request.state.actor = token.name
        if not scope_allows(token.scopes, scope):
            raise Forbidden(f"token lacks the {scope} scope")

    guard.__name__ = f"require_{scope}_scope"
    return guard


ReadAccess = Depends(require_scope("read"))
WriteAccess = Depends(require_scope("write"))
AdminAccess = Depends(require_scope("admin"))


# --- Query strings: a misspelt parameter is refused, never ignored ------------------------------


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route declares, those of its dependencies included."""
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not declare: ignoring `tatic=x` would answer a
    question nobody asked (every technique) as if it were the one asked."""
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute):
        return  # most reads (the technique page) send none: no walk of the dependencies
    known = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidInput(
            f"unknown query parameter {', '.join(repr(u) for u in unknown)}; "
            f"{route.path} takes: {', '.join(sorted(known)) or 'no query parameters'}",
            Location(field=unknown[0]),
        )


KnownQueryOnly = Depends(reject_unknown_query)
