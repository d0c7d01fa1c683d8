"""Two ASGI guards every response passes: browser-hardening headers and the Host allowlist.

SecurityHeaders: nothing is sniffed into another type, nothing is framed (clickjacking), and the
pages run no script but ours from this server: the Content-Security-Policy forbids inline scripts.
Pages may set inline style attributes (the matrix colours), nothing else inline. A response that
sets its own policy (/docs) keeps it.

AllowedHosts: a loopback server with open reads is still reachable from a browser tab through DNS
rebinding (evil.example resolving to 127.0.0.1); the browser then sends `Host: evil.example`.
Only the names in KBMAP_ALLOWED_HOSTS, or by default the loopback names and the addresses bound,
are served; any other Host gets a 400 in the API's error format.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.exposure import allowed_hosts, exposure_of

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": PAGE_CSP,
}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def host_name(host_header: str) -> str:
    """The name in a Host header, without port, brackets, case or a trailing dot."""
    value = host_header.strip().lower()
    if value.startswith("["):  # [::1]:8000
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


class AllowedHosts:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allowed = allowed_hosts(scope["app"].state.settings, exposure_of(scope), scope)
        name = host_name(Headers(scope=scope).get("host", ""))
        if allowed is None or name in allowed:
            await self.app(scope, receive, send)
            return
        shown = name[:100] or "(none)"
        body: dict[str, Any] = {
            "error": {
                "code": "bad_request",
                "message": f"Host {shown!r} is not served here; add it to KBMAP_ALLOWED_HOSTS",
                "location": None,
                "issues": [],
            }
        }
        await JSONResponse(body, status_code=400)(scope, receive, send)
