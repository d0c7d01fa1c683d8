"""Helpers the robustness tests share: row counts, the CLI as a process, archive builders."""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

ROOT = Path(__file__).resolve().parents[2]
# written on every request or write attempt, so they are not "data" a refused input may not change
BOOKKEEPING = {"audit_event", "api_token", "alembic_version"}


def require(module: str) -> None:
    """Skip this test module when a dev dependency is missing; under CI=true that is a failure
    (as an unreachable PostgreSQL is in tests/conftest.py), so a suite never passes by skipping."""
    try:
        importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"{module} is not installed (pip install -e '.[dev]')", allow_module_level=True)


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows in every data table: what "nothing changed" is checked against."""
    with engine.connect() as conn:
        tables = sorted(set(inspect(conn).get_table_names()) - BOOKKEEPING)
        return {t: conn.exec_driver_sql(f'SELECT count(*) FROM "{t}"').scalar_one() for t in tables}


def kbmap(
    *args: str, db: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`kbmap …` as a user runs it, on database `db`."""
    full = {**os.environ, "KBMAP_DATABASE_URL": db, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen_kbmap(*args: str, db: str) -> subprocess.Popen[str]:
    env = {**os.environ, "KBMAP_DATABASE_URL": db}
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]], *, gz: bool = True) -> bytes:
    """An archive of (name, data) files and hand-made members (links, devices, odd names)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
                continue
            name, data = m
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


SIGMA_RULE = b"""title: t
id: 11111111-0000-0000-0000-000000000001
logsource: {product: windows, category: process_creation}
detection: {sel: {Image: x.exe}, condition: sel}
tags: [attack.t1059.001]
"""


def alias_bomb(levels: int = 9, width: int = 10) -> bytes:
    """A canonical catalog whose rule repeats 10^levels strings through 90 aliases (< the 100
    alias uses allowed), small on disk and explosive for anything that walks or stores it."""
    lines = [
        "name: bomb",
        "rules:",
        "  - id: R-1",
        "    l0: &l0 [" + ", ".join(["x"] * width) + "]",
    ]
    for i in range(1, levels):
        lines.append(f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return ("\n".join(lines) + "\n").encode()
