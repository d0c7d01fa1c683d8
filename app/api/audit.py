"""AuditWrites: one audit event for every state-changing request under /api/v1, and one for every
refused authentication (401/403) anywhere, reads and pages included.

A middleware rather than a call in each route, so a new write endpoint is audited without anyone
remembering to. It records the actor (set by the scope guard), the method and route template
relative to /api/v1 ("DELETE /catalogs/{name}"; domain routers are mounted without a prefix), the
target, and the outcome from the status (ok below 400, denied for 401/403, error otherwise, 500
included). The event is committed before the last body chunk goes out, so a client that saw its 201
finds the event. It is plain ASGI, not BaseHTTPMiddleware, so uploads stream through untouched.

Requests that match no route change nothing and are not recorded. A route may name its target
better than its path (the uploaded catalog's name) by setting `request.state.audit_target`.

The `ok` event of a write commits in the write's own transaction (`auth_service.PendingEvent`): a
change whose event cannot be written is rolled back and answered with an error. Other events
(errors, refusals) are written afterwards in their own; a failure to write one is logged. Refusals
are rate-limited (`DeniedLimit`), so anonymous requests cannot grow the table without bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import service as auth_service
from app.core.commit_hook import before_commit
from app.core.config import Settings

log = logging.getLogger("kbmap.audit")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PREFIX = "/api/v1/"


def outcome_of(status: int) -> str:
    if status in (401, 403):
        return "denied"
    return "ok" if status < 400 else "error"


class DeniedLimit:
    """At most `per_client` refusals per client address, and `total` from all clients, are
    recorded per minute; the rest are counted in the log only. Kept per process, in memory."""

    def __init__(
        self, per_client: int, total: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_client, self.total, self.clock = per_client, total, clock
        self.minute = -1
        self.counts: dict[str, int] = {}
        self.dropped = 0

    def allow(self, client: str) -> bool:
        minute = int(self.clock() // 60)
        if minute != self.minute:
            if self.dropped:
                log.warning("%d refused requests not recorded in the audit log", self.dropped)
            self.minute, self.counts, self.dropped = minute, {}, 0
        if sum(self.counts.values()) >= self.total or self.counts.get(client, 0) >= self.per_client:
            self.dropped += 1
            return False
        self.counts[client] = self.counts.get(client, 0) + 1
        return True


def _state(scope: Scope) -> dict[str, Any]:
    return scope.get("state") or {}


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _template(scope: Scope) -> str:
    return str(getattr(scope.get("route"), "path", scope["path"]))


def _detail(scope: Scope, status: int) -> dict[str, Any]:
    return {"status": status, "path": scope["path"][:300], "client": _client(scope)}


def pending_event(scope: Scope, settings: Settings) -> auth_service.PendingEvent:
    """The write's `ok` event, filled in when its unit of work commits (the route then knows its
    actor and target; the status is the route's success status)."""
    return auth_service.PendingEvent(
        actor=lambda: str(_state(scope).get("actor") or "anonymous"),
        action=lambda: f"{scope['method']} {_template(scope)}",
        target=lambda: str(_state(scope).get("audit_target") or scope["path"]),
        detail=lambda: _detail(scope, int(getattr(scope.get("route"), "status_code", 0) or 200)),
        retention_days=settings.audit_retention_days,
    )


class AuditWrites:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.denied = DeniedLimit(
            settings.audit_denied_per_client, settings.audit_denied_per_minute
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        write = scope["method"] not in READ_METHODS and scope["path"].startswith(PREFIX)
        pending = pending_event(scope, self.settings) if write else None
        status = 500
        recorded = False

        async def send_and_record(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                recorded = True
                await self._finish(scope, status, pending)
            await send(message)

        with before_commit(pending):
            try:
                await self.app(scope, receive, send_and_record)
            finally:
                if not recorded:  # an exception before the response finished
                    await self._finish(scope, status, pending)

    async def _finish(
        self, scope: Scope, status: int, pending: auth_service.PendingEvent | None
    ) -> None:
        """Record what the commit did not: a write's failure, any refusal (within the limit)."""
        outcome = outcome_of(status)
        if scope.get("route") is None:  # no such endpoint (404/405): nothing could have changed
            return
        if pending is None and outcome != "denied":  # a read: only refusals are recorded
            return
        if pending is not None and pending.written and outcome == "ok":
            return
        if outcome == "denied" and not self.denied.allow(_client(scope) or "unknown"):
            return
        await self._record(scope, status)

    async def _record(self, scope: Scope, status: int) -> None:
        state = _state(scope)
        try:
            await run_in_threadpool(
                auth_service.record_event,
                scope["app"].state.engine,
                actor=str(state.get("actor") or "anonymous"),
                action=f"{scope['method']} {_template(scope)}",
                target=str(state.get("audit_target") or scope["path"]),
                outcome=outcome_of(status),
                detail=_detail(scope, status),
                retention_days=self.settings.audit_retention_days,
            )
        except Exception:
            log.exception("audit event not recorded for %s %s", scope["method"], scope["path"])
