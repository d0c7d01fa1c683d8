"""AuditWrites: one audit event for every state-changing request under /api/v1.

A middleware rather than a call in each route, so a new write endpoint is audited without anyone
remembering to. It records the actor (set by the scope guard), the method and route template
relative to /api/v1 ("DELETE /catalogs/{name}"; domain routers are mounted without a prefix), the
target, and the outcome from the status (ok below 400, denied for 401/403, error otherwise, 500
included). The event is committed before the last body chunk goes out, so a client that saw its 201
finds the event. It is plain ASGI, not BaseHTTPMiddleware, so uploads stream through untouched.

Requests that match no route change nothing and are not recorded. A route may name its target
better than its path (the uploaded catalog's name) by setting `request.state.audit_target`. A
failure to write the event is logged and does not fail the request, whose own transaction has
already committed by then.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import service as auth_service

log = logging.getLogger("kbmap.audit")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PREFIX = "/api/v1/"


def outcome_of(status: int) -> str:
    if status in (401, 403):
        return "denied"
    return "ok" if status < 400 else "error"


class AuditWrites:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in READ_METHODS
            or not scope["path"].startswith(PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        status = 500
        recorded = False

        async def send_and_record(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                recorded = True
                await self._record(scope, status)
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            if not recorded:  # an exception before the response finished
                await self._record(scope, status)

    async def _record(self, scope: Scope, status: int) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        route = scope.get("route")
        if route is None:  # no such endpoint (404/405): nothing could have changed
            return
        template = str(getattr(route, "path", scope["path"]))
        client = scope.get("client")
        try:
            await run_in_threadpool(
                auth_service.record_event,
                scope["app"].state.engine,
                actor=str(state.get("actor") or "anonymous"),
                action=f"{scope['method']} {template}",
                target=str(state.get("audit_target") or scope["path"]),
                outcome=outcome_of(status),
                detail={
                    "status": status,
                    "path": scope["path"][:300],
                    "client": client[0] if client else None,
                },
            )
        except Exception:
            log.exception("audit event not recorded for %s %s", scope["method"], scope["path"])
