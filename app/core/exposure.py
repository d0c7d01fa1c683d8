"""Where the server is reachable, as one request shows it: read auth, allowed Hosts, public URL.

The answer comes from the sockets the process really listens on (`core/listeners.py`), found on
the first request through each port and kept on `app.state`. A request that no socket of this
process carried (a TestClient or another in-process ASGI call) has no address to go by, so
KBMAP_HOST stands for the intended one. Where the platform cannot list its sockets, nothing is
loopback: reads then need a token unless KBMAP_READ_AUTH=open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.types import Scope

from app.core.config import Settings
from app.core.listeners import LOOPBACK_NAMES, Listener, is_loopback_address, listening_sockets


@dataclass(frozen=True)
class Exposure:
    listeners: tuple[Listener, ...] | None  # None: the platform cannot tell
    in_process: bool  # no listener of ours carried the request
    intended_host: str  # KBMAP_HOST, for in-process requests

    @property
    def loopback_only(self) -> bool:
        """Every bound address is loopback (a unix socket is not)."""
        if self.in_process:
            return is_loopback_address(self.intended_host)
        return bool(self.listeners) and all(x.is_loopback for x in self.listeners or ())

    @property
    def local_only(self) -> bool:
        """Nothing is reachable from the network: loopback addresses and unix sockets only."""
        if self.in_process:
            return self.loopback_only
        return bool(self.listeners) and all(
            x.is_loopback or x.is_unix for x in self.listeners or ()
        )

    def bound_hosts(self) -> set[str]:
        """The concrete addresses bound (wildcards and unix sockets name no Host)."""
        return {x.host for x in self.listeners or () if not (x.is_unix or x.is_wildcard)}


def exposure_of(scope: Scope) -> Exposure:
    """The app's exposure for the port this request came in on, worked out once per port."""
    state = scope["app"].state
    server = scope.get("server")
    port = server[1] if server else None
    cache: dict[Any, Exposure] = state.exposures  # made empty by create_app
    if port not in cache:
        listeners = listening_sockets()
        carried = server is None or (
            listeners is not None and any(x.port == port for x in listeners)
        )
        cache[port] = Exposure(
            listeners=tuple(listeners) if listeners is not None else None,
            in_process=listeners is not None and not carried,
            intended_host=state.settings.host,
        )
    return cache[port]


def reads_need_token(settings: Settings, exposure: Exposure) -> bool:
    """Open reads on loopback by default; KBMAP_READ_AUTH decides otherwise. Production never
    opens reads to the network, whatever it says (start-up refuses that for KBMAP_HOST already)."""
    if settings.read_auth == "required":
        return True
    if settings.read_auth == "open":
        return settings.environment == "production" and not exposure.local_only
    return not exposure.loopback_only


def allowed_hosts(settings: Settings, exposure: Exposure, scope: Scope) -> set[str] | None:
    """Host names a request may carry; None allows any (KBMAP_ALLOWED_HOSTS=*). By default the
    loopback names, the addresses bound and the local address this connection reached."""
    if settings.allowed_hosts is not None:
        names = {h.strip().lower().strip("[]") for h in settings.allowed_hosts.split(",")}
        return None if "*" in names else names - {""}
    server = scope.get("server")
    reached = {str(server[0]).lower()} if server else set()
    return set(LOOPBACK_NAMES) | exposure.bound_hosts() | reached


def public_url(settings: Settings, scope: Scope) -> str:
    """Where links point: KBMAP_PUBLIC_URL, else the address and port this connection reached
    (never the request's Host header, which the client chooses)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    server = scope.get("server")
    host, port = (
        (str(server[0]), server[1]) if server and server[1] else (settings.host, settings.port)
    )
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"
