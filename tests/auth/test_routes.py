"""Authentication and the audit log over HTTP: 401/403 through the error tree, scopes, read modes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, col, select

from app.auth import service as auth_service
from app.auth.tables import ApiToken
from app.core import security
from app.core.config import Settings
from app.main import create_app

UPLOAD = {"file": ("team.yaml", b"name: team\nrules:\n  - id: T-1\n    techniques: [T1550.001]\n")}
INVALID = {
    "error": {
        "code": "unauthorized",
        "message": "invalid or missing token",
        "location": None,
        "issues": [],
    }
}


def token(app: FastAPI, name: str, *scopes: str, days: int | None = None) -> str:
    _, secret = auth_service.create_token(
        app.state.engine, app.state.settings, name=name, scopes=list(scopes), expires_in_days=days
    )
    return secret


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def client_for(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def client(loaded_settings: Settings) -> Iterator[TestClient]:
    """Default settings: loopback, so reads are open and writes need a token."""
    yield from client_for(loaded_settings)


@pytest.fixture
def app(client: TestClient) -> FastAPI:
    assert isinstance(client.app, FastAPI)
    return client.app


def assert_invalid(r: Any, *secrets: str) -> None:
    """`r` is a TestClient response: httpx's, or httpx2's where that is installed (the MCP SDK
    brings it, and Starlette's TestClient prefers it)."""
    assert r.status_code == 401
    assert r.json() == INVALID
    assert r.headers["www-authenticate"] == "Bearer"
    for s in secrets:
        assert s not in r.text and s not in str(r.headers)


def test_token_is_shown_once_and_only_its_hash_is_stored(client: TestClient, app: FastAPI) -> None:
    admin = token(app, "root", "admin")
    r = client.post(
        "/api/v1/tokens",
        json={"name": "ci", "scopes": ["write"], "expires_in_days": 7},
        headers=bearer(admin),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    secret = body["token"]
    parts = security.parse_token(secret)
    assert parts is not None and body["prefix"] == f"kbm_{parts.key_id}"
    assert (body["name"], body["scopes"], body["status"]) == ("ci", ["write"], "active")
    listed = client.get("/api/v1/tokens", headers=bearer(admin))
    assert [t["name"] for t in listed.json()] == ["ci", "root"]
    assert parts.secret not in listed.text and "token" not in listed.json()[0]
    assert "secret_hash" not in listed.text
    with app.state.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM api_token WHERE name = 'ci'").all()
    assert len(rows) == 1 and all(parts.secret not in str(v) for v in rows[0])
    assert client.post("/api/v1/catalogs", files=UPLOAD, headers=bearer(secret)).status_code == 201


def test_wrong_unknown_and_malformed_tokens_get_the_same_401(
    client: TestClient, app: FastAPI
) -> None:
    real = token(app, "ci", "write")
    parts = security.parse_token(real)
    assert parts is not None
    wrong = f"kbm_{parts.key_id}_{'A' * len(parts.secret)}"
    unknown = f"kbm_{'f' * 12}_{parts.secret}"
    for presented in (wrong, unknown, "kbm_nonsense", "x" * 500):
        r = client.post("/api/v1/catalogs", files=UPLOAD, headers=bearer(presented))
        assert_invalid(r, presented, parts.secret)
    assert_invalid(client.post("/api/v1/catalogs", files=UPLOAD))
    assert_invalid(client.post("/api/v1/catalogs", files=UPLOAD, headers={"Authorization": real}))


def test_expired_and_revoked_tokens_get_401(client: TestClient, app: FastAPI) -> None:
    old = token(app, "old", "write", days=1)
    gone = token(app, "gone", "write")
    with Session(app.state.engine) as session:
        session.execute(
            update(ApiToken)
            .where(col(ApiToken.name) == "old")
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        session.commit()
    admin = token(app, "root", "admin")
    assert client.delete("/api/v1/tokens/gone", headers=bearer(admin)).status_code == 204
    for presented in (old, gone):
        assert_invalid(client.get("/api/v1/releases", headers=bearer(presented)), presented)
        assert_invalid(client.delete("/api/v1/catalogs/x", headers=bearer(presented)))
    statuses = {
        t["name"]: t["status"] for t in client.get("/api/v1/tokens", headers=bearer(admin)).json()
    }
    assert statuses == {"gone": "revoked", "old": "expired", "root": "active"}


def test_scopes_rank_read_write_admin(client: TestClient, app: FastAPI) -> None:
    read, write, admin = token(app, "r", "read"), token(app, "w", "write"), token(app, "a", "admin")
    denied = client.post("/api/v1/catalogs", files=UPLOAD, headers=bearer(read))
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        "code": "forbidden",
        "message": "token lacks the write scope",
        "location": None,
        "issues": [],
    }
    assert client.post("/api/v1/catalogs", files=UPLOAD, headers=bearer(admin)).status_code == 201
    assert client.delete("/api/v1/catalogs/team", headers=bearer(write)).status_code == 204
    assert client.get("/api/v1/releases", headers=bearer(read)).status_code == 200
    for t in (read, write):
        r = client.get("/api/v1/tokens", headers=bearer(t))
        assert (
            r.status_code == 403 and r.json()["error"]["message"] == "token lacks the admin scope"
        )
    assert client.post("/api/v1/refresh", headers=bearer(read)).status_code == 403
    assert_invalid(client.post("/api/v1/refresh"))


def test_loopback_reads_are_open_but_writes_are_not(client: TestClient) -> None:
    assert client.get("/api/v1/releases").status_code == 200
    assert client.get("/api/v1/techniques/T1550.001").status_code == 200
    assert_invalid(client.post("/api/v1/catalogs", files=UPLOAD))
    assert_invalid(client.delete("/api/v1/catalogs/maxpatrol-siem"))
    assert_invalid(client.get("/api/v1/tokens"))
    assert_invalid(client.get("/api/v1/audit"))
    # a token that is sent is checked even where reads are open: a typo never reads as anonymous
    assert_invalid(client.get("/api/v1/releases", headers=bearer("kbm_typo")))


@pytest.mark.parametrize(
    "update_",
    [{"read_auth": "required"}, {"host": "0.0.0.0"}, {"host": "10.1.2.3", "read_auth": None}],
)
def test_reads_need_a_token_when_required_or_off_loopback(
    loaded_settings: Settings, update_: dict[str, object]
) -> None:
    settings = loaded_settings.model_copy(update=update_)
    for c in client_for(settings):
        assert isinstance(c.app, FastAPI)
        assert_invalid(c.get("/api/v1/releases"))
        assert_invalid(c.get("/api/v1/techniques/T1550.001"))
        read = token(c.app, "reader", "read")
        r = c.get("/api/v1/techniques/T1550.001", headers=bearer(read))
        assert r.status_code == 200 and r.json()["id"] == "T1550.001"
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_open_mode_keeps_reads_open_off_loopback(loaded_settings: Settings) -> None:
    settings = loaded_settings.model_copy(update={"host": "0.0.0.0", "read_auth": "open"})
    for c in client_for(settings):
        assert c.get("/api/v1/releases").status_code == 200
        assert_invalid(c.post("/api/v1/catalogs", files=UPLOAD))


def test_every_api_route_is_guarded(loaded_settings: Settings) -> None:
    """Secure by default: every /api/v1 operation refuses an anonymous caller when reads need a
    token, and every non-GET one refuses a read token."""
    settings = loaded_settings.model_copy(update={"read_auth": "required"})
    for c in client_for(settings):
        assert isinstance(c.app, FastAPI)
        read = token(c.app, "reader", "read")
        spec = c.get("/openapi.json", headers=bearer(read)).json()
        assert spec["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
        operations = [
            (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
            for path, item in spec["paths"].items()
            if path.startswith("/api/")
            for method in item
        ]
        assert ("DELETE", "/api/v1/catalogs/x") in operations and len(operations) > 20
        for method, path in operations:
            assert_invalid(c.request(method, path))
            if method != "GET":
                r = c.request(method, path, headers=bearer(read))
                assert r.status_code == 403, (method, path)


def test_audit_log_records_writes_with_actor_and_outcome(client: TestClient, app: FastAPI) -> None:
    write, read, admin = (
        token(app, "ci", "write"),
        token(app, "viewer", "read"),
        token(app, "root", "admin"),
    )
    assert client.post("/api/v1/catalogs", files=UPLOAD, headers=bearer(write)).status_code == 201
    assert client.post("/api/v1/catalogs", files=UPLOAD, headers=bearer(read)).status_code == 403
    assert client.post("/api/v1/catalogs", files=UPLOAD).status_code == 401
    bad = {"file": ("x.yaml", b"name: x\nrules: [\n")}
    assert client.post("/api/v1/catalogs", files=bad, headers=bearer(write)).status_code == 422
    assert client.delete("/api/v1/catalogs/team", headers=bearer(write)).status_code == 204
    assert client.get("/api/v1/catalogs", headers=bearer(write)).status_code == 200  # not audited
    r = client.post(
        "/api/v1/tokens", json={"name": "new", "scopes": ["read"]}, headers=bearer(admin)
    )
    assert r.status_code == 201

    for t in (None, read, write):
        denied = client.get("/api/v1/audit", headers=bearer(t) if t else {})
        assert denied.status_code == (401 if t is None else 403)
    page = client.get("/api/v1/audit", headers=bearer(admin)).json()
    rows = [(e["actor"], e["action"], e["target"], e["outcome"]) for e in reversed(page["items"])]
    assert rows == [
        ("ci", "POST /catalogs", "team", "ok"),
        ("viewer", "POST /catalogs", "/api/v1/catalogs", "denied"),
        ("anonymous", "POST /catalogs", "/api/v1/catalogs", "denied"),
        ("ci", "POST /catalogs", "x.yaml", "error"),
        ("ci", "DELETE /catalogs/{name}", "/api/v1/catalogs/team", "ok"),
        ("root", "POST /tokens", "new", "ok"),
        # refused reads are audited too
        ("anonymous", "GET /audit", "/api/v1/audit", "denied"),
        ("viewer", "GET /audit", "/api/v1/audit", "denied"),
        ("ci", "GET /audit", "/api/v1/audit", "denied"),
    ]
    assert page["total"] == 9 and page["items"][-1]["detail"]["status"] == 201
    assert all(write not in str(e) and admin not in str(e) for e in page["items"])
    only_ci = client.get(
        "/api/v1/audit", params={"actor": "ci", "outcome": "ok"}, headers=bearer(admin)
    )
    assert [e["target"] for e in only_ci.json()["items"]] == ["/api/v1/catalogs/team", "team"]


def test_last_used_at_is_updated(client: TestClient, app: FastAPI) -> None:
    read = token(app, "reader", "read")
    with Session(app.state.engine) as session:
        assert session.exec(select(ApiToken.last_used_at)).one() is None
    before = datetime.now(UTC)
    assert client.get("/api/v1/releases", headers=bearer(read)).status_code == 200
    with Session(app.state.engine) as session:
        used = session.exec(select(ApiToken.last_used_at)).one()
    assert used is not None and used >= before - timedelta(seconds=1)
    admin = token(app, "root", "admin")
    listed = {t["name"]: t for t in client.get("/api/v1/tokens", headers=bearer(admin)).json()}
    assert listed["reader"]["last_used_at"] is not None


def test_bad_token_requests_are_4xx(client: TestClient, app: FastAPI) -> None:
    admin = token(app, "root", "admin")
    dup = client.post(
        "/api/v1/tokens", json={"name": "root", "scopes": ["read"]}, headers=bearer(admin)
    )
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "conflict"
    for body in (
        {"name": "x", "scopes": ["root"]},
        {"name": "x", "scopes": []},
        {"name": "cli:bob", "scopes": ["read"]},
        {"name": "x", "scopes": ["read"], "expires_in_days": 0},
    ):
        r = client.post("/api/v1/tokens", json=body, headers=bearer(admin))
        assert r.status_code == 422, body
    assert client.delete("/api/v1/tokens/nobody", headers=bearer(admin)).status_code == 404


def test_crashes_are_audited_and_unknown_paths_are_not(loaded_settings: Settings) -> None:
    from fastapi import APIRouter

    from app.auth.deps import WriteAccess

    app = create_app(loaded_settings)
    boom = APIRouter()

    @boom.post("/api/v1/boom", dependencies=[WriteAccess])
    def explode() -> None:
        raise RuntimeError("boom")

    app.include_router(boom)
    with TestClient(app, raise_server_exceptions=False) as c:
        write, admin = token(app, "ci", "write"), token(app, "root", "admin")
        assert c.post("/api/v1/boom", headers=bearer(write)).status_code == 500
        assert c.post("/api/v1/no-such-thing", headers=bearer(write)).status_code == 404
        items = c.get("/api/v1/audit", headers=bearer(admin)).json()["items"]
    assert [(e["actor"], e["action"], e["outcome"], e["detail"]["status"]) for e in items] == [
        ("ci", "POST /api/v1/boom", "error", 500)
    ]
