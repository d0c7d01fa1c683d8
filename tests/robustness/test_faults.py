"""Faults: an ingest or a catalog import killed part-way (SIGKILL) leaves the previous data and a
working service; readers during a --replace ingest see the old or the new release, never a mix.

Each writer is the real `kbmap` command in a subprocess. It is killed once its write has begun:
on SQLite when the WAL file has grown past a threshold, on PostgreSQL when an INSERT or DELETE of
it is running (pg_stat_activity), then after a few offsets. Both backends.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app.core.config import Limits, Settings
from app.core.db import make_engine
from app.models import init_db
from tests.conftest import (
    CATALOGS,
    LOADED,
    PgServer,
    _require_pg,
    attack_file,
    catalog_file,
)
from tests.robustness.support import popen_kbmap, row_counts

BACKENDS = ["sqlite", "postgresql"]
READERS = 3  # reader threads during the replace: more requests in flight when it commits
REPLACED = [attack_file(f"{d}-attack-18.1.json.gz") for d in ("enterprise", "mobile", "ics")]


# --- databases -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_template(pg_server: PgServer) -> Iterator[str]:
    """A PostgreSQL database like the SQLite one (releases and catalogs), copied per test."""
    _require_pg(pg_server)
    url = pg_server.new_database()
    engine = make_engine(url)
    init_db(engine)
    from app.attack.ingest import ingest_sources

    ingest_sources(engine, [attack_file(n) for n in LOADED], limits=Limits())
    from app.catalog import service as catalog_service
    from app.catalog.source import open_source

    settings = Settings(database_url=url, environment="test")
    for file, name in CATALOGS:
        catalog_service.import_catalog(
            engine, settings, source=open_source(catalog_file(file), settings.limits), name=name
        )
    engine.dispose()
    yield make_url(url).database or ""


@pytest.fixture(params=BACKENDS)
def db(
    request: pytest.FixtureRequest, catalog_sqlite_file: Path, tmp_path: Path, pg_server: PgServer
) -> str:
    """A writable database with releases and catalogs on each backend; returns its URL."""
    if request.param == "sqlite":
        target = tmp_path / "kbmap.sqlite"
        shutil.copy(catalog_sqlite_file, target)
        return f"sqlite:///{target}"
    template = request.getfixturevalue("pg_template")
    name = f"kbmap_t_{uuid.uuid4().hex[:12]}"
    with pg_server.admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    pg_server.created.append(name)
    return pg_server.url.set(database=name).render_as_string(hide_password=False)


def state(engine: Engine) -> dict[str, Any]:
    """Everything a killed writer must not have changed: row counts, the identity of each release
    and catalog (a replace makes new rows), and on SQLite the file's integrity."""
    with engine.connect() as conn:
        releases = conn.execute(
            text("SELECT id, domain, version, loaded_at, object_count FROM release ORDER BY id")
        ).all()
        catalogs = conn.execute(
            text("SELECT id, name, imported_at, rule_count FROM catalog ORDER BY id")
        ).all()
        out: dict[str, Any] = {
            "rows": row_counts(engine),
            "releases": [tuple(map(str, r)) for r in releases],
            "catalogs": [tuple(map(str, c)) for c in catalogs],
        }
        if engine.dialect.name == "sqlite":
            out["integrity"] = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
    return out


# --- killing a writer part-way -------------------------------------------------------------------


def _write_begun(url: str) -> Callable[[], int]:
    """A probe of how far the writer's transaction has got (0: not writing yet)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        wal = Path(f"{parsed.database}-wal")

        def wal_bytes() -> int:
            try:
                return wal.stat().st_size
            except FileNotFoundError:
                return 0

        return wal_bytes
    admin = create_engine(
        parsed.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND state = 'active' "
        "AND (query ILIKE 'INSERT%' OR query ILIKE 'DELETE%' OR query ILIKE 'UPDATE%')"
    )

    def writing() -> int:
        with admin.connect() as conn:
            return int(conn.execute(query, {"db": parsed.database}).scalar_one())

    return writing


def kill_part_way(args: list[str], url: str, *, threshold: int, delay: float) -> tuple[int, int]:
    """Start `kbmap <args>`, SIGKILL it `delay` s after the probe reaches `threshold`;
    returns (exit code, probe value at the kill)."""
    probe = _write_begun(url)
    proc = popen_kbmap(*args, db=url)
    seen = 0
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            seen = probe()
            if seen >= threshold:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout and proc.stderr
        proc.stdout.close()
        proc.stderr.close()
    return proc.returncode, seen


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def assert_service_answers(url: str) -> None:
    from app.main import create_app

    settings = Settings(database_url=url, environment="test")
    with TestClient(create_app(settings)) as client:
        r = client.get("/readyz")
        assert r.status_code == 200 and r.json()["releases"] >= 3, r.text
        page = client.get("/api/v1/techniques/T1550.001", params={"version": "18.1"})
        assert page.status_code == 200 and page.json()["name"] == "Application Access Token"


def offsets(url: str, big: int) -> list[tuple[int, float]]:
    """(probe threshold, delay) pairs: just begun, then further in."""
    if is_sqlite(url):
        return [(1, 0.0), (big // 4, 0.0), (big // 2, 0.0)]
    return [(1, 0.0), (1, 0.15), (1, 0.4)]


def truncate_wal(url: str) -> None:
    """Empty the WAL file (a killed writer leaves it full), so its size measures the next write."""
    if not is_sqlite(url):
        return
    path = make_url(url).database or ""
    with closing(sqlite3.connect(path)) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    wal = Path(f"{path}-wal")
    assert busy == 0 and (not wal.exists() or wal.stat().st_size == 0)


def run_kills(url: str, args: list[str], big: int) -> int:
    """Kill the writer at each offset; after each the state must be exactly the previous one.
    Returns how many kills landed inside the write (the rest came after the commit)."""
    engine = make_engine(url)
    before = state(engine)
    landed = 0
    for threshold, delay in offsets(url, big):
        engine.dispose()
        truncate_wal(url)
        code, seen = kill_part_way(args, url, threshold=threshold, delay=delay)
        after = state(engine)
        if code == -signal.SIGKILL and seen:
            assert after == before, f"killed at {seen} ({threshold}, {delay}s): data changed"
            landed += 1
        else:  # the writer finished first: then it is all there, and it is the new baseline
            assert code == 0, f"writer failed on its own ({code})"
            assert after["rows"] == before["rows"] and after != before
            before = after
        assert_service_answers(url)
    engine.dispose()
    return landed


def test_ingest_killed_part_way_changes_nothing(db: str) -> None:
    """Replacing three releases in one call (one transaction), killed at several points."""
    landed = run_kills(db, ["ingest", *REPLACED, "--replace"], big=40 << 20)
    assert landed >= 2


def test_new_release_ingest_killed_part_way_adds_nothing(db: str) -> None:
    landed = run_kills(db, ["ingest", attack_file("enterprise-attack-16.1.json.gz")], big=24 << 20)
    assert landed >= 2


def test_catalog_import_killed_part_way_changes_nothing(db: str) -> None:
    """Re-importing (replacing) the 4,039-rule Sigma catalog, killed at several points."""
    args = ["catalog", "import", catalog_file("sigma-rules.tar.gz"), "--name", "sigma"]
    landed = run_kills(db, args, big=4 << 20)
    assert landed >= 2


# --- readers during a replace --------------------------------------------------------------------


def _digest(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


SAMPLES: dict[str, Any] = {}


def _keep(value: Any) -> str:
    digest = _digest(value)
    SAMPLES.setdefault(digest, value)
    return digest


def observe(client: TestClient, engine: Engine) -> tuple[str, str, str]:
    """(objects of enterprise 18.1 counted in SQL, /releases, the T1550.001 page), as digests."""
    with engine.connect() as conn:
        counted = conn.execute(
            text(
                "SELECT r.id, r.object_count, "
                "(SELECT count(*) FROM attack_object o WHERE o.release_id = r.id) + "
                "(SELECT count(*) FROM relationship x WHERE x.release_id = r.id) "
                "FROM release r WHERE r.domain = 'enterprise' AND r.version = '18.1'"
            )
        ).all()
    releases = client.get("/api/v1/releases")
    page = client.get("/api/v1/techniques/T1550.001", params={"version": "18.1"})
    return (
        _keep(counted),
        _keep((releases.status_code, releases.json())),
        _keep((page.status_code, page.json())),
    )


def _difference(seen: Any, before: Any, after: Any) -> str:
    """Which top-level fields of an odd observation come from neither side, or from each side."""
    if not (isinstance(seen, tuple) and len(seen) == 2 and isinstance(seen[1], dict)):
        return str(seen)[:400]
    body, old, new = seen[1], before[1], after[1]
    if not isinstance(old, dict) or not isinstance(new, dict):
        return str(seen)[:400]
    parts = {
        k: "old" if body[k] == old.get(k) else "new" if body[k] == new.get(k) else "neither"
        for k in body
        if old.get(k) != new.get(k)
    }
    return f"status {seen[0]}, fields differing between old and new: {parts}"


def test_readers_see_the_old_or_the_new_release_never_a_mix(db: str, tmp_path: Path) -> None:
    """Enterprise 18.1 is replaced by other content (17.1's objects under 18.1), so any mix of the
    two shows as a third state. The 17.1 bundle is copied under a name that states no release, so
    `--version 18.1` contradicts nothing (the 2.0 bundle itself names none)."""
    from app.main import create_app

    other = tmp_path / "enterprise-attack-other.json.gz"
    shutil.copy(attack_file("enterprise-attack-17.1.json.gz"), other)

    engine = make_engine(db)
    settings = Settings(database_url=db, environment="test")
    with TestClient(create_app(settings)) as client:
        before = observe(client, engine)
        proc = popen_kbmap(
            "ingest",
            str(other),
            "--version",
            "18.1",
            "--replace",
            db=db,
        )
        seen: list[tuple[str, str, str]] = []

        def reader() -> None:
            while proc.poll() is None:
                seen.append(observe(client, engine))

        threads = [threading.Thread(target=reader) for _ in range(READERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        assert "enterprise 18.1: replaced" in out
        after = observe(client, engine)
    engine.dispose()
    assert all(a != b for a, b in zip(before, after, strict=True))
    assert len(seen) >= 10, "the writer was too quick to be observed"
    for part, name in enumerate(("SQL count", "/releases", "technique page")):
        mixed = [s[part] for s in seen if s[part] not in (before[part], after[part])]
        assert not mixed, (
            f"{name}: {len(mixed)} of {len(seen)} observations were neither before nor after, "
            f"e.g. {_difference(SAMPLES[mixed[0]], SAMPLES[before[part]], SAMPLES[after[part]])}"
        )
