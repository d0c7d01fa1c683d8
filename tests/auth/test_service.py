"""Token and audit services on both backends: hashes only, identical failures, throttled last use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from app.auth import service as auth_service
from app.auth.tables import ApiToken, AuditEvent
from app.core import security
from app.core.config import Settings
from app.core.errors import Conflict, InvalidInput, NotFound


def row(engine: Engine, name: str) -> ApiToken:
    with Session(engine) as session:
        found = session.exec(select(ApiToken).where(ApiToken.name == name)).one()
        session.expunge(found)
        return found


def verify(engine: Engine, token: str, settings: Settings) -> ApiToken | None:
    with Session(engine, expire_on_commit=False) as session:
        return auth_service.verify_token(session, token, settings)


def test_only_the_hash_is_stored(empty_engine: Engine, settings: Settings) -> None:
    read, token = auth_service.create_token(
        empty_engine, settings, name="ci", scopes=["write", "read"], expires_in_days=30
    )
    parts = security.parse_token(token)
    assert parts is not None
    assert read.prefix == f"kbm_{parts.key_id}" and read.scopes == ["read", "write"]
    assert read.status == "active" and read.expires_at is not None
    assert "token" not in read.model_dump() and parts.secret not in read.model_dump_json()
    with empty_engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT * FROM api_token").all()
    assert len(stored) == 1
    assert all(parts.secret not in str(value) for value in stored[0])
    assert row(empty_engine, "ci").secret_hash == security.hash_secret(
        security.token_key(settings), parts.key_id, parts.secret
    )


def test_verify_accepts_the_token_and_refuses_everything_else(
    empty_engine: Engine, settings: Settings
) -> None:
    _, token = auth_service.create_token(empty_engine, settings, name="ci", scopes=["read"])
    good = verify(empty_engine, token, settings)
    assert good is not None and good.name == "ci" and good.scopes == ["read"]
    parts = security.parse_token(token)
    assert parts is not None
    wrong_secret = f"kbm_{parts.key_id}_{'x' * len(parts.secret)}"
    unknown_id = f"kbm_{'0' * 12}_{parts.secret}"
    other_key = settings.model_copy(update={"token_key": "another-key"})
    assert verify(empty_engine, wrong_secret, settings) is None
    assert verify(empty_engine, unknown_id, settings) is None
    assert verify(empty_engine, "garbage", settings) is None
    assert verify(empty_engine, token, other_key) is None  # a new KBMAP_TOKEN_KEY voids tokens


def test_unknown_and_malformed_cost_one_comparison_like_a_wrong_secret(
    empty_engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = auth_service.create_token(empty_engine, settings, name="ci", scopes=["read"])
    parts = security.parse_token(token)
    assert parts is not None
    calls: list[str] = []
    real = security.secret_matches

    def counting(key: bytes, parsed: security.ParsedToken, stored: str) -> bool:
        calls.append(parsed.key_id)
        return real(key, parsed, stored)

    monkeypatch.setattr(security, "secret_matches", counting)
    for presented in (f"kbm_{parts.key_id}_wrong", f"kbm_{'0' * 12}_wrong", "not-a-token"):
        calls.clear()
        assert verify(empty_engine, presented, settings) is None
        assert len(calls) == 1, presented


def test_expired_and_revoked_tokens_fail(empty_engine: Engine, settings: Settings) -> None:
    _, old = auth_service.create_token(
        empty_engine, settings, name="old", scopes=["read"], expires_in_days=1
    )
    with Session(empty_engine) as session:
        session.execute(
            update(ApiToken)
            .where(col(ApiToken.name) == "old")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()
    assert verify(empty_engine, old, settings) is None
    _, gone = auth_service.create_token(empty_engine, settings, name="gone", scopes=["admin"])
    assert verify(empty_engine, gone, settings) is not None
    revoked = auth_service.revoke_token(empty_engine, name="gone")
    assert revoked.status == "revoked" and revoked.revoked_at is not None
    assert verify(empty_engine, gone, settings) is None
    again = auth_service.revoke_token(empty_engine, name="gone")
    assert again.revoked_at == revoked.revoked_at  # revoking twice keeps the first time
    with Session(empty_engine) as session:
        listed = {t.name: t.status for t in auth_service.list_tokens(session)}
    assert listed == {"gone": "revoked", "old": "expired"}


def test_last_used_is_written_at_most_once_a_minute(
    empty_engine: Engine, settings: Settings
) -> None:
    _, token = auth_service.create_token(empty_engine, settings, name="ci", scopes=["read"])
    assert row(empty_engine, "ci").last_used_at is None
    verify(empty_engine, token, settings)
    first = row(empty_engine, "ci").last_used_at
    assert first is not None and datetime.now(UTC) - first < timedelta(seconds=30)
    verify(empty_engine, token, settings)
    assert row(empty_engine, "ci").last_used_at == first
    stale = first - timedelta(minutes=2)
    with Session(empty_engine) as session:
        session.execute(
            update(ApiToken).where(col(ApiToken.name) == "ci").values(last_used_at=stale)
        )
        session.commit()
    verify(empty_engine, token, settings)
    latest = row(empty_engine, "ci").last_used_at
    assert latest is not None and latest > first


def test_bad_requests(empty_engine: Engine, settings: Settings) -> None:
    auth_service.create_token(empty_engine, settings, name="ci", scopes=["read"])
    with pytest.raises(Conflict, match="'ci' exists"):
        auth_service.create_token(empty_engine, settings, name="ci", scopes=["read"])
    auth_service.revoke_token(empty_engine, name="ci")
    with pytest.raises(Conflict, match="revoked names stay taken"):
        auth_service.create_token(empty_engine, settings, name="ci", scopes=["read"])
    with pytest.raises(InvalidInput, match="unknown: root"):
        auth_service.create_token(empty_engine, settings, name="x", scopes=["root"])
    with pytest.raises(InvalidInput):
        auth_service.create_token(empty_engine, settings, name="x", scopes=[])
    with pytest.raises(InvalidInput, match="token name"):
        auth_service.create_token(empty_engine, settings, name="cli:bob", scopes=["read"])
    with pytest.raises(NotFound, match="'nobody'"):
        auth_service.revoke_token(empty_engine, name="nobody")


def test_audit_events_newest_first_and_filtered(empty_engine: Engine) -> None:
    for i, outcome in enumerate(("ok", "denied", "error", "ok")):
        auth_service.record_event(
            empty_engine,
            actor="ci" if i % 2 == 0 else "cli:alice",
            action="catalog import",
            target=f"c{i}",
            outcome=outcome,
            detail={"i": i},
        )
    with Session(empty_engine) as session:
        page = auth_service.list_events(session, limit=2)
        assert (page.total, [e.target for e in page.items]) == (4, ["c3", "c2"])
        assert page.items[0].detail == {"i": 3} and page.items[0].at.tzinfo is not None
        ci = auth_service.list_events(session, actor="ci")
        assert [e.target for e in ci.items] == ["c2", "c0"]
        denied = auth_service.list_events(session, outcome="denied")
        assert [(e.actor, e.target) for e in denied.items] == [("cli:alice", "c1")]
        future = auth_service.list_events(session, since=datetime.now() + timedelta(days=1))
        assert future.total == 0
        assert session.exec(select(AuditEvent)).all()[0].outcome == "ok"
    with pytest.raises(InvalidInput):
        auth_service.record_event(empty_engine, actor="a", action="b", target="c", outcome="meh")
