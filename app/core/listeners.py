"""The sockets this process really listens on, whoever bound them.

Read auth, the Host allowlist and the default public URL follow the address actually bound, not
KBMAP_HOST: `uvicorn --factory --host 0.0.0.0`, `--fd`, `--uds` and gunicorn bind sockets kbmap
never sees. Every open descriptor of the process is looked at (Linux /proc/self/fd, BSD and macOS
/dev/fd); a socket that accepts connections is a listener, and its address is what it is bound to.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from dataclasses import dataclass

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_FD_DIRS = ("/proc/self/fd", "/dev/fd")


@dataclass(frozen=True)
class Listener:
    """One listening socket: an IP address and port, or a unix socket path (port None)."""

    host: str
    port: int | None

    @property
    def is_unix(self) -> bool:
        return self.port is None

    @property
    def is_loopback(self) -> bool:
        return not self.is_unix and is_loopback_address(self.host)

    @property
    def is_wildcard(self) -> bool:
        return not self.is_unix and self.host in ("0.0.0.0", "::")


def is_loopback_address(host: str) -> bool:
    """127.0.0.0/8, ::1 (also IPv4-mapped) or the name localhost; a wildcard is not loopback."""
    if host.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def listening_sockets() -> list[Listener] | None:
    """Every listening socket of this process; None where the platform cannot tell."""
    fd_dir = next((d for d in _FD_DIRS if os.path.isdir(d)), None)
    if fd_dir is None or not hasattr(socket, "SO_ACCEPTCONN"):
        return None
    found = (_listener(int(name)) for name in os.listdir(fd_dir) if name.isdigit())
    return sorted({x for x in found if x is not None}, key=lambda x: (x.host, x.port or 0))


def _listener(fd: int) -> Listener | None:
    """The descriptor as a listener, or None; the descriptor itself is left open and untouched."""
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return None
        address = sock.getsockname()
    except OSError:
        return None
    finally:
        sock.detach()
    if isinstance(address, tuple):
        return Listener(host=str(address[0]), port=int(address[1]))
    path = address.decode(errors="replace") if isinstance(address, bytes) else str(address)
    return Listener(host=path, port=None)
