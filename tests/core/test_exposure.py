"""Read auth, allowed Hosts and links follow the sockets really bound, however the server starts.

The servers here are real processes (uvicorn's own command line, as the README's load command
starts it) on free ports; each one's database is an empty SQLite file, which is enough to answer
`/api/v1/releases` (an empty list) when reads are open.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.core.config import Settings
from app.core.exposure import Exposure, reads_need_token
from app.core.listeners import Listener, listening_sockets

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KBMAP_")}
    env.update(
        KBMAP_DATABASE_URL=f"sqlite:///{tmp_path / 'kbmap.sqlite'}", KBMAP_ENVIRONMENT="test"
    )
    env.update(extra)
    return env


def start(
    args: list[str], env: dict[str, str], probe: httpx.Client, fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    """Start a server and wait until it answers /healthz (30 s at most)."""
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stderr=subprocess.PIPE, pass_fds=fds)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if probe.get("/healthz").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.kill()
    _, err = proc.communicate()
    pytest.fail(f"server did not start: {err.decode(errors='replace')[-2000:]}")


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def uvicorn_factory(host: str, port: int) -> list[str]:
    args = ["app.main:create_app", "--factory", "--host", host, "--port", str(port)]
    return [sys.executable, "-m", "uvicorn", *args, "--log-level", "warning"]


@pytest.mark.parametrize(("host", "status"), [("127.0.0.1", 200), ("0.0.0.0", 401)])
def test_uvicorn_factory_reads_follow_the_bound_address(
    tmp_path: Path, servers: list[subprocess.Popen[bytes]], host: str, status: int
) -> None:
    """KBMAP_HOST is unset (so 127.0.0.1 by default): only the bound address can tell."""
    port = free_port()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
        servers.append(start(uvicorn_factory(host, port), env_for(tmp_path), c))
        r = c.get("/api/v1/releases")
        assert r.status_code == status, r.text
        assert (r.json() == []) if status == 200 else (r.json()["error"]["code"] == "unauthorized")


def test_kbmap_serve_on_all_interfaces_needs_a_token(
    tmp_path: Path, servers: list[subprocess.Popen[bytes]], loaded_sqlite_file: Path
) -> None:
    import shutil

    db = tmp_path / "kbmap.sqlite"
    shutil.copy(loaded_sqlite_file, db)
    port = free_port()
    args = [sys.executable, "-m", "app.cli.main", "serve", "--host", "0.0.0.0", "--port", str(port)]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
        servers.append(start(args, env_for(tmp_path), c))
        assert c.get("/api/v1/releases").status_code == 401
        assert c.get("/docs").status_code == 401
        assert c.get("/openapi.json").status_code == 401


def test_unix_socket_needs_a_token_unless_reads_are_open(
    tmp_path: Path, servers: list[subprocess.Popen[bytes]]
) -> None:
    for mode, status in (("", 401), ("open", 200)):
        path = tmp_path / f"kbmap{mode}.sock"
        args = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
        args += ["--uds", str(path), "--log-level", "warning"]
        env = env_for(tmp_path, **({"KBMAP_READ_AUTH": mode} if mode else {}))
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://localhost") as c:
            servers.append(start(args, env, c))
            assert c.get("/api/v1/releases").status_code == status


def test_listening_sockets_sees_what_this_process_binds() -> None:
    before = listening_sockets()
    assert before is not None  # Linux: /proc/self/fd
    with socket.socket() as s, socket.socket() as idle:
        s.bind(("127.0.0.1", 0))
        s.listen()
        idle.bind(("127.0.0.1", 0))  # bound but not listening: not a listener
        port = s.getsockname()[1]
        now = listening_sockets()
        assert now is not None
        assert Listener("127.0.0.1", port) in now
        assert all(x.port != idle.getsockname()[1] for x in now)
    after = listening_sockets()
    assert after is not None and Listener("127.0.0.1", port) not in after


@pytest.mark.parametrize(
    ("listeners", "read_auth", "environment", "need"),
    [
        ([Listener("127.0.0.1", 1), Listener("::1", 1)], None, "development", False),
        ([Listener("127.0.0.1", 1), Listener("10.0.0.5", 2)], None, "development", True),
        ([Listener("0.0.0.0", 1)], None, "development", True),
        ([Listener("::ffff:127.0.0.1", 1)], None, "development", False),
        ([Listener("/run/kbmap.sock", None)], None, "development", True),
        ([Listener("/run/kbmap.sock", None)], "open", "production", False),
        ([Listener("0.0.0.0", 1)], "open", "development", False),
        ([Listener("0.0.0.0", 1)], "open", "production", True),  # fails closed
        ([Listener("127.0.0.1", 1)], "required", "development", True),
        (None, None, "development", True),  # cannot tell: not loopback
    ],
)
def test_read_auth_policy(
    listeners: list[Listener] | None, read_auth: str | None, environment: str, need: bool
) -> None:
    settings = Settings(environment="test").model_copy(
        update={"read_auth": read_auth, "environment": environment}
    )
    exposure = Exposure(
        listeners=tuple(listeners) if listeners is not None else None,
        in_process=False,
        intended_host="127.0.0.1",
    )
    assert reads_need_token(settings, exposure) is need


def test_production_open_reads_fail_closed_off_loopback(
    tmp_path: Path, servers: list[subprocess.Popen[bytes]]
) -> None:
    """KBMAP_HOST says loopback (so start-up accepts open reads), uvicorn binds 0.0.0.0."""
    port = free_port()
    env = env_for(
        tmp_path, KBMAP_ENVIRONMENT="production", KBMAP_READ_AUTH="open", KBMAP_TOKEN_KEY="k" * 32
    )
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
        servers.append(start(uvicorn_factory("0.0.0.0", port), env, c))
        assert c.get("/api/v1/releases").status_code == 401


@pytest.mark.parametrize(("host", "status"), [("127.0.0.1", 200), ("0.0.0.0", 401)])
def test_a_socket_handed_over_by_descriptor_is_judged_by_its_address(
    tmp_path: Path, servers: list[subprocess.Popen[bytes]], host: str, status: int
) -> None:
    """`uvicorn --fd` (systemd socket activation, gunicorn-style supervisors): the server never
    sees a host option; the descriptor's own address decides."""
    sock = socket.socket()
    sock.bind((host, 0))
    sock.listen()
    port = sock.getsockname()[1]
    args = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
    args += ["--fd", str(sock.fileno()), "--log-level", "warning"]
    with sock, httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
        servers.append(start(args, env_for(tmp_path), c, fds=(sock.fileno(),)))
        assert c.get("/api/v1/releases").status_code == status
