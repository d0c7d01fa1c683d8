"""Tokens (create, verify, revoke, list) and the audit log (record, list).

Every public command that changes state commits once. The `ok` event of a change commits in the
change's own transaction (`PendingEvent`, through `core.commit_hook.before_commit`): an import
whose event cannot be written fails with it. Events of failures and refusals are written in their
own transaction, so a rolled-back import still leaves its `error` event. Each write of an event
also prunes the events older than KBMAP_AUDIT_RETENTION_DAYS.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, select

from app.auth.models import TOKEN_NAME_PATTERN, AuditEventRead, TokenRead, TokenStatus
from app.auth.tables import ApiToken, AuditEvent
from app.core import security
from app.core.commit_hook import before_commit
from app.core.config import Settings
from app.core.db import transaction
from app.core.errors import Conflict, InvalidInput, NotFound, Unavailable
from app.core.pages import Page

# A read must not turn into a write on every request: last_used_at moves at most this often.
LAST_USED_EVERY = timedelta(minutes=1)
OUTCOMES = ("ok", "denied", "error")
_EVENT = "kbmap_audit_event"  # session.info key of the event a unit of work added
_FIELD_CAP = {"actor": 120, "action": 200, "target": 300}  # paths come from the client


def _now() -> datetime:
    return datetime.now(UTC)


def token_status(row: ApiToken, now: datetime | None = None) -> TokenStatus:
    now = now or _now()
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def token_read(row: ApiToken) -> TokenRead:
    return TokenRead(
        name=row.name,
        prefix=f"{security.TOKEN_PREFIX}_{row.key_id}",
        scopes=list(row.scopes),
        status=token_status(row),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _check_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in security.SCOPES]
    if unknown or not scopes:
        raise InvalidInput(
            f"scopes must be one or more of {', '.join(security.SCOPES)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    return sorted(set(scopes), key=security.SCOPES.index)


def create_token(
    engine: Engine,
    settings: Settings,
    *,
    name: str,
    scopes: list[str],
    expires_in_days: int | None = None,
) -> tuple[TokenRead, str]:
    """Make a token; returns its description and the token string, which is stored nowhere."""
    if not re.fullmatch(TOKEN_NAME_PATTERN, name):
        raise InvalidInput("a token name is 1-80 letters, digits, '.', '_' or '-'")
    wanted = _check_scopes(scopes)
    if expires_in_days is not None and expires_in_days < 1:
        raise InvalidInput("expires_in_days must be at least 1")
    token, parts = security.new_token()
    now = _now()
    row = ApiToken(
        key_id=parts.key_id,
        name=name,
        secret_hash=security.hash_secret(security.token_key(settings), parts.key_id, parts.secret),
        scopes=wanted,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    try:
        with transaction(engine) as session:
            if session.exec(select(ApiToken.id).where(ApiToken.name == name)).first() is not None:
                raise Conflict(f"a token named {name!r} exists (revoked names stay taken)")
            session.add(row)
            session.flush()
            read = token_read(row)
    except IntegrityError as exc:  # a concurrent create of the same name
        raise Conflict(f"a token named {name!r} exists (revoked names stay taken)") from exc
    return read, token


def revoke_token(engine: Engine, *, name: str) -> TokenRead:
    """Revoke by name; revoking twice keeps the first revocation time. Rows are kept for audit."""
    with transaction(engine) as session:
        row = session.exec(select(ApiToken).where(ApiToken.name == name)).first()
        if row is None:
            raise NotFound(f"no token named {name!r}")
        if row.revoked_at is None:
            row.revoked_at = _now()
            session.add(row)
            session.flush()
        return token_read(row)


def list_tokens(session: Session) -> list[TokenRead]:
    return [token_read(r) for r in session.exec(select(ApiToken).order_by(ApiToken.name)).all()]


def verify_token(session: Session, token: str, settings: Settings) -> ApiToken | None:
    """The live token a presented string belongs to, or None; every failure looks the same.

    The key id selects at most one row; an unknown key id or a malformed token is checked against
    a dummy hash so it costs what a wrong secret costs. Expiry and revocation are checked only
    after the secret matched, and answer the same None.
    """
    key = security.token_key(settings)
    parsed = security.parse_token(token)
    row = None
    if parsed is not None:
        row = session.exec(select(ApiToken).where(ApiToken.key_id == parsed.key_id)).first()
    if parsed is None or row is None:
        security.dummy_check(key, parsed)
        return None
    if not security.secret_matches(key, parsed, row.secret_hash):
        return None
    now = _now()
    if token_status(row, now) != "active":
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        row.last_used_at = now
        session.add(row)
        session.commit()
    return row


def local_actor() -> str:
    """The actor of a command run on this machine: "cli:<os user>"."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no passwd entry, e.g. an arbitrary uid in a container
        user = "unknown"
    return f"cli:{user}"


def record_event(
    engine: Engine,
    *,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
    retention_days: int | None = None,
) -> None:
    """Append one audit event in its own transaction (independent of the action's)."""
    if outcome not in OUTCOMES:
        raise InvalidInput(f"outcome must be one of {', '.join(OUTCOMES)}")
    with before_commit(None), transaction(engine) as session:
        add_event(session, actor, action, target, outcome, detail or {}, retention_days)


def add_event(
    session: Session,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    detail: dict[str, Any],
    retention_days: int | None,
) -> None:
    """Add one event to the session's unit of work, and drop the events past retention."""
    now = _now()
    if retention_days is not None:
        cutoff = now - timedelta(days=retention_days)
        session.execute(delete(AuditEvent).where(col(AuditEvent.at) < cutoff))
    event = AuditEvent(
        at=now,
        actor=actor[: _FIELD_CAP["actor"]],
        action=action[: _FIELD_CAP["action"]],
        target=target[: _FIELD_CAP["target"]],
        outcome=outcome,
        detail=detail,
    )
    session.add(event)
    session.info[_EVENT] = event


def event_of(session: Session) -> AuditEventRead | None:
    """The audit event this unit of work added (flushed, so it has its id), if any: what a
    record of the change names as its cause."""
    event = session.info.get(_EVENT)
    if not isinstance(event, AuditEvent) or event.id is None:
        return None
    return AuditEventRead.model_validate(event, from_attributes=True)


class PendingEvent:
    """The `ok` event of a change in progress, added by the unit of work that commits the change
    (use as `with core.commit_hook.before_commit(event):`), so both commit or neither does.
    `target` and `detail` are asked for then, when the change knows them; the unit of work may name
    its target better in `session.info["audit_target"]` (the catalog name an upload turned out to
    have)."""

    def __init__(
        self,
        *,
        actor: Callable[[], str],
        action: Callable[[], str],
        target: Callable[[], str],
        detail: Callable[[], dict[str, Any]],
        retention_days: int | None,
    ) -> None:
        self.actor, self.action, self.target, self.detail = actor, action, target, detail
        self.retention_days = retention_days
        self.written = False  # one event per change, in the first unit of work that commits

    def __call__(self, session: Session) -> None:
        if self.written:
            return
        target = str(session.info.get("audit_target") or self.target())
        actor, action, detail = self.actor(), self.action(), self.detail()
        try:
            add_event(session, actor, action, target, "ok", detail, self.retention_days)
            session.flush()
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0][:200]
            raise Unavailable(
                f"the audit event of {action} could not be written ({reason}); "
                "the change was not made"
            ) from exc
        self.written = True


def list_events(
    session: Session,
    *,
    limit: int = 100,
    offset: int = 0,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
) -> Page[AuditEventRead]:
    """Audit events, newest first, filtered by exact actor/action/outcome and a start time."""
    query = select(AuditEvent)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if outcome is not None:
        query = query.where(AuditEvent.outcome == outcome)
    if since is not None:
        if since.tzinfo is None:  # a bare timestamp is read as UTC, the log's own clock
            since = since.replace(tzinfo=UTC)
        query = query.where(col(AuditEvent.at) >= since)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(AuditEvent.id).desc()).limit(limit).offset(offset)).all()
    return Page[AuditEventRead](
        items=[AuditEventRead.model_validate(r, from_attributes=True) for r in rows],
        total=int(total),
        limit=limit,
        offset=offset,
    )
