"""`/mcp` on `kbmap serve`: the MCP server over streamable HTTP, behind the API's guards.

Stateless, with JSON answers (no session to keep, nothing streamed): each POST is one message in,
one answer out. Before the SDK sees a request it passes what every read of the API passes: a
token with the read scope when reads need one (`core/exposure.py`; 401 without a live token, 403
with one that ranks below read), an Origin that names a host the server answers to (a browser
tab's request from another site is refused: DNS rebinding, as `api/http_guards.py` refuses the
Host), and a body no larger than `MAX_BODY`. Refusals are the API's error JSON. The Host check
itself is the app's `AllowedHosts`, which every route, this one too, passes first.

The SDK's handler is built on the first `/mcp` request, not at start: importing the SDK takes
about a second, which `kbmap serve` and every app a test builds would otherwise pay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup, TaskStatus
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from app.auth import service as auth_service
from app.auth.deps import INVALID_TOKEN
from app.core.config import Settings
from app.core.errors import Forbidden, KbmapError, Location, TooLarge, Unauthorized
from app.core.exposure import allowed_hosts, exposure_of, reads_need_token
from app.core.security import scope_allows

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

PATH = "/mcp"
MAX_BODY = 256 << 10  # one JSON-RPC message: a tool call's arguments are a few hundred bytes


def session_manager(engine: Engine, settings: Settings) -> StreamableHTTPSessionManager:
    """The SDK's streamable HTTP handler for kbmap's server: stateless, JSON answers. Its own
    Host/Origin check is off: the app's guards and `_check_origin` decide, as for every route."""
    from mcp.server.transport_security import TransportSecuritySettings

    from app.mcp.server import build_server

    server = build_server(engine, settings)
    server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        max_request_body_size=MAX_BODY,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return server.session_manager


class LazyHandler:
    """The SDK's handler, built and started in the lifespan's task group on first use."""

    def __init__(self, tasks: TaskGroup, engine: Engine, settings: Settings) -> None:
        self._tasks, self._engine, self._settings = tasks, engine, settings
        self._lock = anyio.Lock()
        self._manager: StreamableHTTPSessionManager | None = None

    async def manager(self) -> StreamableHTTPSessionManager:
        async with self._lock:
            if self._manager is None:
                built = await anyio.to_thread.run_sync(
                    session_manager, self._engine, self._settings
                )
                await self._tasks.start(_serve, built)
                self._manager = built
        return self._manager


async def _serve(manager: StreamableHTTPSessionManager, *, task_status: TaskStatus[None]) -> None:
    async with manager.run():
        task_status.started()
        await anyio.sleep_forever()


@asynccontextmanager
async def running(state: Any, engine: Engine, settings: Settings) -> AsyncIterator[None]:
    """For the app's lifespan: `state.mcp`, whose handler runs in this task group once built."""
    async with anyio.create_task_group() as tasks:
        state.mcp = LazyHandler(tasks, engine, settings)
        yield
        tasks.cancel_scope.cancel()


class McpEndpoint:
    """The ASGI endpoint at /mcp: the guards, then the SDK's handler."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state
        try:
            _check_size(scope)
            _check_origin(scope, state.settings)
            await run_in_threadpool(state.schema)  # 503 while the database is down
            await _check_token(scope, state.engine, state.settings)
        except KbmapError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            await JSONResponse(exc.as_dict(), exc.status, headers=headers)(scope, receive, send)
            return
        manager = await state.mcp.manager()
        await manager.handle_request(scope, receive, send)


def mount(router: Router) -> None:
    router.routes.append(
        Route(PATH, McpEndpoint(), methods=["GET", "POST", "DELETE"], include_in_schema=False)
    )


def _check_size(scope: Scope) -> None:
    """A declared body over MAX_BODY; one sent in chunks is cut by the SDK at the same size."""
    length = Headers(scope=scope).get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise TooLarge(f"an MCP message is at most {MAX_BODY} bytes", Location(file=PATH))


def _check_origin(scope: Scope, settings: Settings) -> None:
    """A browser names the page's site in Origin: it must be a host this server answers to."""
    origin = Headers(scope=scope).get("origin")
    if origin is None:
        return  # not a browser, or a same-origin request some browsers send without it
    allowed = allowed_hosts(settings, exposure_of(scope), scope)
    host = (urlsplit(origin).hostname or "").lower().rstrip(".")
    if allowed is not None and host not in allowed:
        shown = origin[:100]
        raise Forbidden(f"Origin {shown!r} is not served here; add its host to KBMAP_ALLOWED_HOSTS")


async def _check_token(scope: Scope, engine: Engine, settings: Settings) -> None:
    """The read guard of the API (`auth/deps.require_scope("read")`), for an ASGI request."""
    secret = _bearer(Headers(scope=scope).get("authorization", ""))
    if secret is None:
        if reads_need_token(settings, exposure_of(scope)):
            raise Unauthorized(INVALID_TOKEN)
        return
    token = await run_in_threadpool(_verify, engine, secret, settings)
    if token is None:
        raise Unauthorized(INVALID_TOKEN)
    if not scope_allows(token.scopes, "read"):
        raise Forbidden("token lacks the read scope")


def _bearer(header: str) -> str | None:
    """The credentials of `Authorization: Bearer …`, as FastAPI's HTTPBearer reads them."""
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _verify(engine: Engine, secret: str, settings: Settings) -> Any:
    with Session(engine, expire_on_commit=False) as session:
        return auth_service.verify_token(session, secret, settings)
