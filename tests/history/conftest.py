"""History fixtures: databases with enterprise 16.1, 17.1 and 18.1 on both backends (built once,
copied per test), the app on one with a write and admin token, and raw facts read straight from
the shared files (json of the STIX bundles, PyYAML of the DeTT&CT samples), never through kbmap.
"""

from __future__ import annotations

import functools
import gzip
import json
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from app.attack.ingest import ingest_sources
from app.core.config import Limits, Settings
from app.core.db import make_engine
from app.models import init_db
from tests.conftest import ATTACK_DIR, PgServer, _require_pg, attack_file, catalog_file

API = "/api/v1"
ENTERPRISE = ("16.1", "17.1", "18.1")
SIGMA18 = "sigma-attack18"
WRITER = "history-writer"


def _ingest_enterprise(engine: Engine, versions: tuple[str, ...] = ENTERPRISE) -> None:
    files = [attack_file(f"enterprise-attack-{v}.json.gz") for v in versions]
    ingest_sources(engine, files, limits=Limits())


@pytest.fixture(scope="session")
def history_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SQLite with enterprise 16.1, 17.1 and 18.1 and no history yet, built once."""
    path = tmp_path_factory.mktemp("history") / "kbmap.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    _ingest_enterprise(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def history_pg_template(pg_server: PgServer) -> str:
    """A PostgreSQL database like `history_sqlite_file`, only ever copied (CREATE … TEMPLATE)."""
    _require_pg(pg_server)
    url = pg_server.new_database()
    engine = make_engine(url)
    init_db(engine)
    _ingest_enterprise(engine)
    engine.dispose()
    return make_url(url).database or ""


def copy_of_loaded(backend: str, request: pytest.FixtureRequest, tmp: Path) -> str:
    """A writable copy of the 16.1/17.1/18.1 database on `backend`; its URL."""
    if backend == "sqlite":
        target = tmp / f"h{uuid.uuid4().hex[:8]}.sqlite"
        shutil.copy(request.getfixturevalue("history_sqlite_file"), target)
        return f"sqlite:///{target}"
    template = request.getfixturevalue("history_pg_template")
    server: PgServer = request.getfixturevalue("pg_server")
    name = f"kbmap_t_{uuid.uuid4().hex[:12]}"
    with server.admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    server.created.append(name)
    return server.url.set(database=name).render_as_string(hide_password=False)


def settings_for(url: str, **extra: Any) -> Settings:
    return Settings(
        database_url=url,
        attack_source=str(ATTACK_DIR),
        environment="test",
        limits=Limits(),
        **extra,
    )


def make_client(settings: Settings) -> Iterator[TestClient]:
    """The app (which attaches the recorder) with a write and admin token named WRITER."""
    from app.auth.service import create_token
    from app.main import create_app

    with TestClient(create_app(settings)) as c:
        _, token = create_token(engine_of(c), settings, name=WRITER, scopes=["write", "admin"])
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def engine_of(client: TestClient) -> Engine:
    return cast("Engine", client.app.state.engine)  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_client(
    request: pytest.FixtureRequest, tmp_path: Path, pg_server: PgServer
) -> Iterator[TestClient]:
    """The app on a fresh copy of the loaded database, on each backend."""
    yield from make_client(settings_for(copy_of_loaded(request.param, request, tmp_path)))


@pytest.fixture
def sqlite_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """The app on a fresh SQLite copy of the loaded database."""
    yield from make_client(settings_for(copy_of_loaded("sqlite", request, tmp_path)))


# --- API helpers ---------------------------------------------------------------------------------


def ok(response: Any, *codes: int) -> Any:
    assert response.status_code in (codes or (200,)), response.text
    return response.json() if response.content else None


def upload_catalog(client: TestClient, file: str | Path, **form: str) -> dict[str, Any]:
    path = Path(file)
    r = client.post(f"{API}/catalogs", files={"file": (path.name, path.read_bytes())}, data=form)
    return cast("dict[str, Any]", ok(r, 201))


def upload_text(client: TestClient, name: str, body: str, **form: str) -> dict[str, Any]:
    r = client.post(f"{API}/catalogs", files={"file": (name, body.encode())}, data=form)
    return cast("dict[str, Any]", ok(r, 201))


def import_sigma18(client: TestClient) -> dict[str, Any]:
    return upload_catalog(client, catalog_file(f"{SIGMA18}-rules.tar.gz"), name=SIGMA18)


def history(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    points = ok(client.get(f"{API}/coverage/history", params=params))["points"]
    return cast("list[dict[str, Any]]", points)


def changes(client: TestClient, **params: Any) -> dict[str, Any]:
    return cast("dict[str, Any]", ok(client.get(f"{API}/coverage/changes", params=params)))


def covered_now(client: TestClient, **params: Any) -> int:
    """What /coverage (not the history) counts as covered now."""
    return int(ok(client.get(f"{API}/coverage", params=params))["all"]["covered"])


def technique_rows(client: TestClient, **params: str) -> list[dict[str, Any]]:
    """Every row of /coverage/techniques, paged through."""
    rows: list[dict[str, Any]] = []
    while True:
        page = ok(
            client.get(
                f"{API}/coverage/techniques",
                params={"limit": "1000", "offset": str(len(rows)), **params},
            )
        )
        rows += page["items"]
        if len(rows) >= page["total"] or not page["items"]:
            return rows


# --- raw ATT&CK, read with json only -------------------------------------------------------------


@dataclass(frozen=True)
class RawTechnique:
    status: str  # active, revoked, deprecated
    revoked_by: str | None


@functools.cache
def raw_techniques(version: str) -> dict[str, RawTechnique]:
    """ATT&CK id → status (and the id that revoked it) in one shared enterprise bundle."""
    with gzip.open(ATTACK_DIR / f"enterprise-attack-{version}.json.gz", "rb") as fh:
        objects = json.load(fh)["objects"]
    ids = {o["id"]: _attack_id(o) for o in objects if o["type"] == "attack-pattern"}
    by: dict[str, str] = {}
    for o in objects:
        if o["type"] == "relationship" and o["relationship_type"] == "revoked-by":
            src, dst = ids.get(o["source_ref"]), ids.get(o["target_ref"])
            if src and dst:
                by[src] = dst
    out: dict[str, RawTechnique] = {}
    for o in objects:
        if o["type"] == "attack-pattern" and (tid := ids[o["id"]]):
            status = (
                "revoked"
                if o.get("revoked")
                else "deprecated"
                if o.get("x_mitre_deprecated")
                else "active"
            )
            out[tid] = RawTechnique(status, by.get(tid))
    return out


def _attack_id(o: dict[str, Any]) -> str | None:
    for ref in o.get("external_references", []):
        if ref.get("source_name") == "mitre-attack":
            return str(ref["external_id"])
    return None


def sigma_subset(tmp: Path, every: int = 10, first: int = 0) -> Path:
    """Every `every`-th Sigma rule of the sigma-attack18 archive from the `first`, as a smaller
    archive (a real catalog's mix of log sources and tags, imported in a fraction of the time)."""
    target = tmp / f"sigma-part-{first}.tar.gz"
    with (
        tarfile.open(catalog_file(f"{SIGMA18}-rules.tar.gz")) as src,
        tarfile.open(target, "w:gz") as out,
    ):
        rules = [m for m in src.getmembers() if m.isfile() and m.name.endswith(".yml")]
        for member in rules[first::every]:
            out.addfile(member, src.extractfile(member))
    return target
