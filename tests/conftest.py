"""Shared fixtures: settings on a throwaway database, real ATT&CK releases, both backends.

Real data comes from ../shared (override with KBMAP_TEST_ATTACK_DIR / KBMAP_TEST_CATALOG_DIR).
Database-backed fixtures run on SQLite and on the PostgreSQL server at KBMAP_TEST_DATABASE_URL
(default: the local server's `test` database); under CI=true an unreachable server fails the run.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from app.core.config import Limits, Settings
from app.core.db import make_engine
from app.models import init_db

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
ATTACK_DIR = Path(os.environ.get("KBMAP_TEST_ATTACK_DIR", ROOT.parent / "shared" / "attack"))
CATALOG_DIR = Path(os.environ.get("KBMAP_TEST_CATALOG_DIR", ROOT.parent / "shared" / "catalogs"))
PG_URL = os.environ.get(
    "KBMAP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]


def attack_file(name: str) -> str:
    path = ATTACK_DIR / name
    assert path.exists(), f"shared ATT&CK file missing: {path}"
    return str(path)


def catalog_file(name: str) -> str:
    path = CATALOG_DIR / name
    assert path.exists(), f"shared catalog file missing: {path}"
    return str(path)


class PgServer:
    """Makes throwaway databases on the PostgreSQL server for one test session."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def available(self) -> str | None:
        try:
            with self.admin.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}".splitlines()[0]
        return None

    def new_database(self) -> str:
        name = f"kbmap_t_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer(PG_URL)
    yield server
    server.drop_all()


def _require_pg(server: PgServer) -> None:
    problem = server.available()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable under CI: {problem}")
        pytest.skip(f"PostgreSQL at {PG_URL} unreachable: {problem}")


def make_db_url(backend: str, tmp: Path, pg: PgServer) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'kbmap.sqlite'}"
    _require_pg(pg)
    return pg.new_database()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for one test: its own SQLite file, loopback, development."""
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'kbmap.sqlite'}",
        attack_source=str(ATTACK_DIR),
        environment="test",
        limits=Limits(),
    )


@pytest.fixture(params=BACKENDS)
def empty_engine(
    request: pytest.FixtureRequest, tmp_path: Path, pg_server: PgServer
) -> Iterator[Engine]:
    """An empty, migrated database on each backend."""
    engine = make_engine(make_db_url(request.param, tmp_path, pg_server))
    init_db(engine)
    yield engine
    engine.dispose()


def _ingest(engine: Engine, *names: str) -> None:
    from app.attack.ingest import ingest_sources

    ingest_sources(engine, [attack_file(n) for n in names], limits=Limits())


LOADED = (
    "enterprise-attack-17.1.json.gz",
    "enterprise-attack-18.1.json.gz",
    "mobile-attack-18.1.json.gz",
    "ics-attack-18.1.json.gz",
)


@pytest.fixture(scope="session")
def loaded_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database with enterprise 17.1 and 18.1, mobile 18.1 and ICS 18.1, built once."""
    path = tmp_path_factory.mktemp("loaded") / "kbmap.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    _ingest(engine, *LOADED)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def loaded_pg_url(pg_server: PgServer) -> str:
    _require_pg(pg_server)
    url = pg_server.new_database()
    engine = make_engine(url)
    init_db(engine)
    _ingest(engine, *LOADED)
    engine.dispose()
    return url


@pytest.fixture(scope="session", params=BACKENDS)
def loaded_engine(request: pytest.FixtureRequest, loaded_sqlite_file: Path) -> Iterator[Engine]:
    """Read-only use: the loaded database on each backend (do not write through it)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{loaded_sqlite_file}")
    else:
        engine = make_engine(request.getfixturevalue("loaded_pg_url"))
    yield engine
    engine.dispose()


@pytest.fixture
def loaded_copy(loaded_sqlite_file: Path, tmp_path: Path) -> str:
    """A writable copy of the loaded SQLite database; returns its URL."""
    target = tmp_path / "kbmap.sqlite"
    shutil.copy(loaded_sqlite_file, target)
    return f"sqlite:///{target}"


@pytest.fixture
def loaded_settings(settings: Settings, loaded_copy: str) -> Settings:
    return settings.model_copy(update={"database_url": loaded_copy})


CATALOGS = (
    ("sigma-attack18-rules.tar.gz", "sigma-attack18"),
    ("sigma-rules.tar.gz", "sigma"),
    ("open-xp-rules-rules.tar.gz", "open-xp-rules"),
)


def import_catalogs(settings: Settings) -> None:
    from app.catalog import service as catalog_service
    from app.catalog.source import open_source

    engine = make_engine(settings.database_url)
    for file, name in CATALOGS:
        source = open_source(catalog_file(file), settings.limits)
        catalog_service.import_catalog(
            engine, settings, source=source, name=name, domain="enterprise", version="18.1"
        )
    source = open_source(ROOT / "kb" / "catalogs" / "maxpatrol-siem.yaml", settings.limits)
    catalog_service.import_catalog(engine, settings, source=source)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


@pytest.fixture(scope="session")
def catalog_sqlite_file(loaded_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The loaded database plus the shared catalogs and the shipped MaxPatrol catalog, built once."""
    path = tmp_path_factory.mktemp("catalogs") / "kbmap.sqlite"
    shutil.copy(loaded_sqlite_file, path)
    import_catalogs(Settings(database_url=f"sqlite:///{path}", environment="test"))
    return path


@pytest.fixture
def catalog_settings(settings: Settings, catalog_sqlite_file: Path, tmp_path: Path) -> Settings:
    """Settings on a writable copy of the database with every catalog imported."""
    target = tmp_path / "catalogs.sqlite"
    shutil.copy(catalog_sqlite_file, target)
    return settings.model_copy(update={"database_url": f"sqlite:///{target}"})


@pytest.fixture(scope="session")
def catalog_engine(catalog_sqlite_file: Path) -> Iterator[Engine]:
    """Read-only use: the database with every catalog imported."""
    engine = make_engine(f"sqlite:///{catalog_sqlite_file}")
    yield engine
    engine.dispose()


@pytest.fixture
def catalog_client(catalog_settings: Settings) -> Iterator[TestClient]:
    """The app on a copy of the database with the shared catalogs, with a write token (uploads
    and deletes need one)."""
    from fastapi.testclient import TestClient  # here: at conftest load it warns outside filters

    from app.auth.service import create_token
    from app.main import create_app

    with TestClient(create_app(catalog_settings)) as c:
        _, token = create_token(
            c.app.state.engine, catalog_settings, name="test-writer", scopes=["write"]
        )
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


# Markers: every test is `unit` or `integration`, so `pytest -m unit` is a quick loop. A test is
# integration when its fixtures reach a database (`settings` names a file the test then builds),
# the app, a server or a browser. A test that does so inline (a subprocess, a database on a
# tmp_path) or reads a whole real release or catalog (seconds) carries the marker itself, or its
# module's `pytestmark` does; the hook then keeps it.
KINDS = ("unit", "integration")
INTEGRATION_FIXTURES = frozenset(
    {
        "pg_server",
        "settings",
        "loaded_sqlite_file",
        "catalog_sqlite_file",
        "live_server",
        "browser",
        "installed",
    }
)
INTEGRATION_NAME = re.compile(r"client|engine|server|^db$|_db$")


def _fixture_kind(fixturenames: list[str]) -> str:
    """The kind a test's fixture closure implies."""
    heavy = any(f in INTEGRATION_FIXTURES or INTEGRATION_NAME.search(f) for f in fixturenames)
    return "integration" if heavy else "unit"


def _kinds(item: pytest.Item) -> list[str]:
    return [kind for kind in KINDS if item.get_closest_marker(kind)]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Gives each test one kind unless it declares one; fails collection on none or both."""
    for item in items:
        if not _kinds(item):
            item.add_marker(_fixture_kind(getattr(item, "fixturenames", [])))
    wrong = [f"{item.nodeid} {_kinds(item)}" for item in items if len(_kinds(item)) != 1]
    if wrong:
        raise pytest.UsageError(f"tests need exactly one of {KINDS}: {wrong[:10]}")
