"""The kbmap command as a user runs it: a real process, its exit code and its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import attack_file

pytestmark = pytest.mark.integration  # runs kbmap in a subprocess on a database it builds


def kbmap(
    *args: str, db: str, check: bool = False, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KBMAP_DATABASE_URL": db, "COLUMNS": str(columns)}
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_ingest_technique_and_noop(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.sqlite'}"
    out = kbmap("ingest", attack_file("enterprise-attack-17.1.json.gz"), db=db, check=True)
    assert out.stdout.startswith("enterprise 17.1: loaded (")
    again = kbmap("ingest", attack_file("enterprise-attack-17.1.json.gz"), db=db, check=True)
    assert "already loaded, nothing to do" in again.stdout
    page = kbmap("technique", "T1550.001", db=db, check=True).stdout
    assert "T1550.001: Application Access Token" in page
    assert "DS0006" in page and "Web Credential: Web Credential Usage" in page
    for m in ("M1013", "M1021", "M1036", "M1041", "M1047"):
        assert m in page


def test_bad_input_is_one_line_and_nonzero(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.sqlite'}"
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    proc = kbmap("ingest", str(bad), db=db)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"kbmap: {bad}, line 1: not valid JSON: unexpected character"
    ]
    missing = kbmap("technique", "T1550.001", db=db)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "kbmap: no ATT&CK release loaded"


def test_serve_on_a_public_address_requires_tokens_for_reads(tmp_path: Path) -> None:
    """`kbmap serve --host 0.0.0.0` must not leave reads open (the app reads KBMAP_HOST)."""
    import socket
    import time

    import httpx

    db = f"sqlite:///{tmp_path / 'k.sqlite'}"
    kbmap("ingest", attack_file("ics-attack-18.1.json.gz"), db=db, check=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "KBMAP_DATABASE_URL": db}
    env.pop("KBMAP_HOST", None)
    env.pop("KBMAP_READ_AUTH", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "serve", "--host", "0.0.0.0", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/releases", timeout=5)
        assert r.status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)


def _on_a_terminal(*args: str, db: str) -> tuple[int, str]:
    """Run kbmap with stdin, stdout and stderr on a pseudo-terminal; (exit code, all output)."""
    import pty

    env = {**os.environ, "KBMAP_DATABASE_URL": db, "COLUMNS": "120", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        close_fds=True,
    )
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.wait(timeout=120), out.decode(errors="replace")


def test_ingest_draws_a_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    for name in ("ics-attack-17.1.json.gz", "ics-attack-18.1.json.gz"):
        (bundles / name).write_bytes(Path(attack_file(name)).read_bytes())
    code, out = _on_a_terminal("ingest", str(bundles), db=f"sqlite:///{tmp_path / 't.sqlite'}")
    assert code == 0, out
    for step in ("reading ics-attack-17.1.json.gz", "writing ics 17.1", "writing ics 18.1"):
        assert step in out
    assert "━" in out  # the bar itself
    assert "100%" in out
    assert "ics 18.1: loaded (" in out

    quiet = kbmap("ingest", str(bundles), db=f"sqlite:///{tmp_path / 'q.sqlite'}", check=True)
    assert quiet.stderr == ""
    assert "━" not in quiet.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nosuch",), "kbmap: No such command 'nosuch'."),
        (("ingest",), "kbmap: Missing argument 'sources'."),
        (("ingest", "--bogus", "x"), "kbmap: No such option: --bogus"),
        (("catalog", "nosub"), "kbmap: No such command 'nosub'."),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    out = kbmap(*args, db=f"sqlite:///{tmp_path / 'u.sqlite'}")
    assert (out.returncode, out.stderr, out.stdout) == (2, message + "\n", "")


def test_help_lists_every_command_and_a_command_runs_on_its_own(tmp_path: Path) -> None:
    """The CLI builds only the command a run names (see app.cli.main._for_command)."""
    from app.cli.main import _for_command, app

    listed = kbmap("--help", db=f"sqlite:///{tmp_path / 'h.sqlite'}", check=True).stdout
    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert len(names) > 10 and all(f" {n} " in listed for n in names)
    narrow = _for_command(["releases"])
    assert [c.name for c in narrow.registered_commands] == ["releases"]
    assert narrow.registered_groups == []
    assert _for_command(["nosuch"]) is app and _for_command([]) is app
    out = kbmap("releases", "--json", db=f"sqlite:///{tmp_path / 'h.sqlite'}")
    # the narrowed app runs the command, which finds no database (a read makes none)
    assert out.returncode == 1 and out.stderr.startswith("kbmap: no kbmap database at ")


def test_ingest_refuses_a_version_the_file_name_contradicts(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.sqlite'}"
    src = attack_file("ics-attack-18.1.json.gz")
    proc = kbmap("ingest", src, "--version", "17.1", db=db)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"kbmap: {src}: --version 17.1 contradicts the file name (18.1)"
    ]
