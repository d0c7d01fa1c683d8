"""Failures outside the error tree reach API clients in its JSON format: a database that does
not answer (503), a full disk (507), any other bug (500), never a text/plain 500."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from app.auth.service import create_token
from app.core.config import Settings
from app.main import create_app

UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/x"
# more rules than the empty tables' pages hold, so the import needs new pages
TEAM = b"name: team\nrules:\n" + b"".join(
    b"  - id: T-%d\n    title: token use %d\n    techniques: [T1550.001]\n" % (i, i)
    for i in range(2000)
)


def error_of(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json", response.text
    body: dict[str, Any] = response.json()["error"]
    return body


def test_a_database_down_at_start_is_503_json_and_health_stays_up(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"database_url": UNREACHABLE}))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        for path in ("/api/v1/releases", "/api/v1/techniques/T1550.001"):
            r = client.get(path)
            assert r.status_code == 503
            error = error_of(r)
            assert error["code"] == "database_unavailable"
            assert error["message"].startswith("the database did not answer: connection failed")


def test_the_schema_is_made_once_the_database_answers(settings: Settings, tmp_path: Path) -> None:
    """Unreachable at start (its folder's parent is missing), reachable later: the first
    request then makes the schema, and reads work."""
    url = f"sqlite:///{tmp_path / 'later' / 'db' / 'k.sqlite'}"
    app = create_app(settings.model_copy(update={"database_url": url}))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/api/v1/releases")
        assert r.status_code == 503 and error_of(r)["code"] == "database_unavailable"
        (tmp_path / "later").mkdir()
        r = client.get("/api/v1/releases")
        assert (r.status_code, r.json()) == (200, [])
        assert (tmp_path / "later" / "db" / "k.sqlite").is_file()


def test_a_full_disk_on_a_write_is_507_json_and_writes_nothing(loaded_settings: Settings) -> None:
    app = create_app(loaded_settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        engine = app.state.engine
        _, token = create_token(engine, loaded_settings, name="w", scopes=["write"])
        client.headers["Authorization"] = f"Bearer {token}"

        @event.listens_for(engine, "connect")
        def cap(dbapi_connection: Any, _record: Any) -> None:
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count={pages}")  # SQLite's own error

        engine.dispose()  # every connection from now on is capped
        r = client.post("/api/v1/catalogs", files={"file": ("team.yaml", TEAM)})
        assert r.status_code == 507
        assert error_of(r) == {
            "code": "storage_full",
            "message": "no space left on the disk (database or disk is full); nothing was written",
            "location": None,
            "issues": [],
        }
        event.remove(engine, "connect", cap)
        engine.dispose()
        assert client.get("/api/v1/catalogs/team").status_code == 404


def test_any_other_failure_is_a_json_500(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/api/v1/boom")
    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/api/v1/enospc")
    def enospc() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    @app.get("/api/v1/eacces")
    def eacces() -> None:
        raise OSError(errno.EACCES, "Permission denied")

    with TestClient(app, raise_server_exceptions=False) as client:
        full = client.get("/api/v1/enospc")
        assert full.status_code == 507
        assert error_of(full)["message"] == (
            "no space left on the disk ([Errno 28] No space left on device); nothing was written"
        )
        other = client.get("/api/v1/eacces")  # an OSError that is not a full disk is a bug
        assert other.status_code == 500 and error_of(other)["code"] == "internal_error"
        r = client.get("/api/v1/boom")
        assert r.status_code == 500
        assert error_of(r) == {
            "code": "internal_error",
            "message": "internal server error",
            "location": None,
            "issues": [],
        }
        page = client.get("/boom")  # the same failure on a page path: an HTML page
        assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
        assert "internal server error" in page.text and "a bug" not in page.text
