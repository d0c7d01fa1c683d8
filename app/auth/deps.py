"""Authentication: bearer tokens and scopes, as route guards (principle 12, secure by default)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.auth import service as auth_service
from app.auth.tables import ApiToken
from app.core.config import Settings
from app.core.deps import SettingsDep
from app.core.errors import Forbidden, Unauthorized
from app.core.exposure import exposure_of, reads_need_token
from app.core.security import SCOPES, scope_allows

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
    KBMAP_READ_AUTH=open (`core/exposure.py`); write and admin always need one. The actor (token
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
