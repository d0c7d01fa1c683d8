"""A catalog import killed at any moment (SIGKILL) leaves the catalog and its history snapshot
together or neither: the snapshot is written in the import's own transaction.

The writer is the real `kbmap catalog import` of the sigma-attack18 archive in a subprocess, on
SQLite and on PostgreSQL. One full run on a copy times it (when its write begins, when it ends);
then the writer is killed before its write, at fractions of the write, and finally let finish.
After every run the tables are read with plain SQL (sqlite3, psycopg), not through kbmap.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app.attack.ingest import ingest_sources
from app.core.config import Limits
from app.core.db import make_engine
from app.models import init_db
from tests.conftest import PgServer, _require_pg, attack_file, catalog_file
from tests.robustness.support import ROOT

NAME = "sigma-attack18"
ARGS = ["catalog", "import", catalog_file(f"{NAME}-rules.tar.gz"), "--name", NAME]
KILLS = 7  # inside the write, closing in on the commit


# --- databases -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_base(pg_server: PgServer) -> str:
    """A PostgreSQL database with enterprise 18.1, only ever copied (CREATE … TEMPLATE)."""
    _require_pg(pg_server)
    url = pg_server.new_database()
    engine = make_engine(url)
    init_db(engine)
    ingest_sources(engine, [attack_file("enterprise-attack-18.1.json.gz")], limits=Limits())
    engine.dispose()
    return make_url(url).database or ""


def _copy(backend: str, request: pytest.FixtureRequest, tmp: Path) -> str:
    if backend == "sqlite":
        target = tmp / f"k{uuid.uuid4().hex[:8]}.sqlite"
        shutil.copy(request.getfixturevalue("loaded_sqlite_file"), target)
        return f"sqlite:///{target}"
    server: PgServer = request.getfixturevalue("pg_server")
    name = f"kbmap_t_{uuid.uuid4().hex[:12]}"
    with server.admin.connect() as conn:
        conn.execute(
            text(f'CREATE DATABASE "{name}" TEMPLATE "{request.getfixturevalue("pg_base")}"')
        )
    server.created.append(name)
    return server.url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def copies(
    request: pytest.FixtureRequest, tmp_path: Path, pg_server: PgServer
) -> Callable[[], str]:
    """Fresh databases with enterprise 18.1 and no catalog, on one backend."""
    return lambda: _copy(request.param, request, tmp_path)


# --- reading the tables with plain SQL -----------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    revision: int | None  # the catalog's revision; None: no catalog
    snapshots: list[str]  # the causes of its snapshots, in order
    current: int  # coverage_current rows of its scope


QUERIES = (
    "SELECT revision FROM catalog WHERE name = {p}",
    "SELECT cause FROM coverage_snapshot WHERE catalog = {p} ORDER BY id",
    "SELECT count(*) FROM coverage_current WHERE scope = {p}",
)


def seen(url: str) -> Seen:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with closing(sqlite3.connect(parsed.database or "")) as conn:
            rows = [conn.execute(q.format(p="?"), (a,)).fetchall() for q, a in _asked()]
    else:
        conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo) as conn:
            rows = [conn.execute(q.format(p="%s"), (a,)).fetchall() for q, a in _asked()]
    revision, causes, current = rows
    return Seen(revision[0][0] if revision else None, [c for (c,) in causes], current[0][0])


def _asked() -> list[tuple[str, str]]:
    return list(zip(QUERIES, [NAME, NAME, f"catalog:{NAME}"], strict=True))


def assert_together(state: Seen) -> None:
    """The catalog and its snapshots: one snapshot per revision (an import, then replaces), and
    current values of its scope exactly when it exists."""
    if state.revision is None:
        assert state.snapshots == [] and state.current == 0, state
        return
    assert state.snapshots == ["catalog_import"] + ["catalog_replace"] * (state.revision - 1)
    assert state.current > 0, state


# --- the writer ----------------------------------------------------------------------------------


def _probe(url: str, *, recording: bool = False) -> Callable[[], bool]:
    """Has the writer's transaction begun writing? (SQLite: the WAL grew; PostgreSQL: a write
    statement of its database is running.) With `recording` (PostgreSQL only): is it in the
    recorder (a statement on the history's tables, or waiting for the recorder's lock)?"""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        wal = Path(f"{parsed.database}-wal")
        return lambda: wal.exists() and wal.stat().st_size > 0
    admin = create_engine(
        parsed.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid() "
        + (
            "AND ((state IN ('active', 'idle in transaction') AND query ILIKE '%coverage_%') "
            "OR (wait_event_type = 'Lock' AND query ILIKE '%pg_advisory_xact_lock%'))"
            if recording
            else "AND state = 'active' "
            "AND (query ILIKE 'INSERT%' OR query ILIKE 'DELETE%' OR query ILIKE 'UPDATE%')"
        )
    )

    def writing() -> bool:
        with admin.connect() as conn:
            return bool(conn.execute(query, {"db": parsed.database}).scalar_one())

    return writing


def _checkpoint(url: str) -> None:
    """Empty the WAL (a killed writer leaves it), so the probe sees the next write begin."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with closing(sqlite3.connect(parsed.database or "")) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


RECORDER_LOCK = "kbmap coverage history"  # the recorder's advisory lock (app/history/recording.py)


def _hold_recorder_lock(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """Take the recorder's advisory lock, so a writer stops at the start of its record, inside
    its transaction, after its rules are written: a kill there is a kill inside the recorder."""
    parsed = make_url(url)
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(conninfo, autocommit=True)
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (RECORDER_LOCK,))
    return conn


@dataclass
class Run:
    code: int | None
    begun: float | None  # seconds from the start to the write's first sign
    committed: float | None  # seconds from the start to the catalog's row seen (when watched)


@pytest.fixture
def writer() -> Iterator[Callable[..., Run]]:
    """Runs `kbmap catalog import` in its own process group; kills it `after_begin` seconds
    after its write begun (or `at` seconds after its start); None: lets it finish."""
    started: list[subprocess.Popen[bytes]] = []

    def run(
        url: str,
        *,
        at: float | None = None,
        after_begin: float | None = None,
        recording: bool = False,
        watch: bool = False,
    ) -> Run:
        _checkpoint(url)
        probe, recorder = _probe(url), _probe(url, recording=True) if recording else None
        held = _hold_recorder_lock(url) if recording else None
        env = {**os.environ, "KBMAP_DATABASE_URL": url}
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", *ARGS],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its forked parse children die with it
        )
        started.append(proc)
        t0, begun, committed = time.monotonic(), None, None
        while proc.poll() is None and time.monotonic() - t0 < 300:
            now = time.monotonic() - t0
            if begun is None and probe():
                begun = now
            if watch and begun is not None and committed is None and seen(url).revision:
                committed = now
            due = at is not None and now >= at
            due = due or (
                after_begin is not None and begun is not None and now >= begun + after_begin
            )
            if due or (recorder is not None and begun is not None and recorder()):
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait(60)
        if held is not None:
            held.close()
        return Run(proc.returncode, begun, committed)

    yield run
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_import_killed_at_any_moment_keeps_catalog_and_snapshot_together(
    copies: Callable[[], str], writer: Callable[..., Run]
) -> None:
    """Killed before its write, then ever later in it until a kill comes after the commit, then
    around the commit (a kill too late moves the next one earlier): the recorder runs last, just
    before the commit. On PostgreSQL once more, the moment a recorder's statement is seen."""
    url = copies()
    assert_together(seen(url))
    run = writer(url, at=0.5)
    assert run.code == -signal.SIGKILL and seen(url).revision is None, run
    landed, committed, after = 0, 0, 0.25
    for _ in range(KILLS):
        before = seen(url).revision or 0
        run = writer(url, after_begin=after)
        state = seen(url)
        assert_together(state)
        assert run.code in (0, -signal.SIGKILL) and run.begun is not None, run
        if (state.revision or 0) > before:
            committed, after = committed + 1, after * 0.8
        else:
            landed, after = landed + 1, after * (1.1 if committed else 1.6)
    if not url.startswith("sqlite"):  # the kill lands in the recorder's statements
        run = writer(url, recording=True)
        assert run.code == -signal.SIGKILL, run
        assert_together(seen(url))
    final = writer(url)
    assert final.code == 0, final
    assert_together(seen(url))
    assert seen(url).revision is not None and landed >= 3 and committed >= 1, (landed, committed)
