"""The audit log under attack and failure: refusals recorded within a rate limit, old events
pruned, and a change whose audit event cannot be written rolled back with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from app.api.audit import DeniedLimit
from app.auth import service as auth_service
from app.auth.tables import AuditEvent
from app.catalog.tables import Catalog
from app.core.config import Settings
from app.core.db import make_engine
from app.main import create_app
from tests.conftest import ROOT

UPLOAD = {"file": ("team.yaml", b"name: team\nrules:\n  - id: T-1\n    techniques: [T1550.001]\n")}
# What a failing audit store looks like to the database: every insert into the log is refused.
FAIL_AUDIT = (
    "CREATE TRIGGER audit_down BEFORE INSERT ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END"
)


def events(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all())


def catalog_names(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(Catalog.name)).all())


def write_token(engine: Engine, settings: Settings) -> dict[str, str]:
    _, secret = auth_service.create_token(engine, settings, name="ci", scopes=["write"])
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def required(loaded_settings: Settings) -> Settings:
    return loaded_settings.model_copy(
        update={"read_auth": "required", "audit_denied_per_client": 5, "audit_denied_per_minute": 8}
    )


def test_refused_reads_and_pages_are_audited_with_the_client(required: Settings) -> None:
    with TestClient(create_app(required), client=("203.0.113.7", 4000)) as c:
        engine = c.app.state.engine  # type: ignore[attr-defined]
        assert c.get("/api/v1/techniques/T1550.001").status_code == 401
        assert c.get("/techniques/T1550.001").status_code == 401
        bad = {"Authorization": "Bearer kbm_000000000000_wrong"}
        assert c.get("/api/v1/releases", headers=bad).status_code == 401
        assert c.get("/openapi.json").status_code == 401
        assert c.get("/api/v1/no-such-thing").status_code == 404  # no route: not recorded
        got = [(e.actor, e.action, e.outcome, e.detail["client"]) for e in events(engine)]
    assert got == [
        ("anonymous", "GET /techniques/{attack_id}", "denied", "203.0.113.7"),
        ("anonymous", "GET /techniques/{attack_id}", "denied", "203.0.113.7"),
        ("anonymous", "GET /releases", "denied", "203.0.113.7"),
        ("anonymous", "GET /openapi.json", "denied", "203.0.113.7"),
    ]


def test_a_burst_of_refusals_is_capped_per_client_and_in_all(required: Settings) -> None:
    app = create_app(required)
    with TestClient(app, client=("198.51.100.1", 1)) as a:
        for _ in range(30):
            assert a.get("/api/v1/releases").status_code == 401
        assert len(events(app.state.engine)) == 5  # audit_denied_per_client
        with TestClient(app, client=("198.51.100.2", 2)) as b:
            for _ in range(30):
                assert b.post("/api/v1/catalogs", files=UPLOAD).status_code == 401
        logged = events(app.state.engine)
    assert len(logged) == 8  # audit_denied_per_minute, from both clients together
    assert [e.detail["client"] for e in logged].count("198.51.100.2") == 3


def test_denied_limit_starts_again_each_minute() -> None:
    now = [60.0]
    limit = DeniedLimit(per_client=2, total=3, clock=lambda: now[0])
    assert [limit.allow("a") for _ in range(3)] == [True, True, False]
    assert [limit.allow("b") for _ in range(2)] == [True, False]  # the total is reached
    now[0] = 125.0
    assert limit.allow("a") and limit.allow("b") and limit.allow("c") and not limit.allow("d")


def test_events_past_retention_are_pruned_when_events_are_written(
    loaded_settings: Settings,
) -> None:
    settings = loaded_settings.model_copy(update={"audit_retention_days": 30})
    with TestClient(create_app(settings)) as c:
        engine = c.app.state.engine  # type: ignore[attr-defined]
        now = datetime.now(UTC)
        with Session(engine) as session:
            for days, target in ((45, "old"), (31, "older than 30"), (29, "recent")):
                at = now - timedelta(days=days)
                session.add(AuditEvent(at=at, actor="x", action="a", target=target, outcome="ok"))
            session.commit()
        headers = write_token(engine, settings)
        assert c.post("/api/v1/catalogs", files=UPLOAD, headers=headers).status_code == 201
        assert [e.target for e in events(engine)] == ["recent", "team"]
    auth_service.record_event(
        engine, actor="x", action="a", target="t", outcome="ok", retention_days=1
    )
    assert [e.target for e in events(engine)] == ["team", "t"]


def test_an_api_change_whose_event_cannot_be_written_is_rolled_back(
    loaded_settings: Settings,
) -> None:
    app = create_app(loaded_settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        engine = app.state.engine
        headers = write_token(engine, loaded_settings)
        assert c.post("/api/v1/catalogs", files=UPLOAD, headers=headers).status_code == 201
        with engine.begin() as conn:
            conn.execute(text(FAIL_AUDIT))
        again = {"file": ("team2.yaml", UPLOAD["file"][1].replace(b"team", b"team2"))}
        r = c.post("/api/v1/catalogs", files=again, headers=headers)
        assert r.status_code == 503, r.text
        assert "audit event of POST /catalogs could not be written" in r.json()["error"]["message"]
        assert c.delete("/api/v1/catalogs/team", headers=headers).status_code == 503
        assert sorted(catalog_names(engine)) == ["team"]  # neither change happened


@pytest.fixture
def loaded_copy_file(loaded_sqlite_file: Path, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "k.sqlite"
    shutil.copy(loaded_sqlite_file, path)
    yield path


def test_a_cli_import_whose_event_cannot_be_written_fails(
    loaded_copy_file: Path, tmp_path: Path
) -> None:
    db = f"sqlite:///{loaded_copy_file}"
    engine = make_engine(db)
    with engine.begin() as conn:
        conn.execute(text(FAIL_AUDIT))
    source = tmp_path / "team.yaml"
    source.write_bytes(UPLOAD["file"][1])
    env = {**os.environ, "KBMAP_DATABASE_URL": db, "KBMAP_ENVIRONMENT": "test"}
    run = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "catalog", "import", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last == (
        "kbmap: the audit event of catalog import could not be written (audit log unavailable); "
        "the change was not made"
    )
    assert catalog_names(engine) == []
    engine.dispose()
