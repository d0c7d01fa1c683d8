"""Admin routes: create, list and revoke tokens; read the audit log.

The admin scope is applied where the router is mounted (`api/router.py`). Writes here are audited
by the middleware like any other; the routes only name the token as the event's target.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from app.auth import service as auth_service
from app.auth.models import (
    TOKEN_NAME_PATTERN,
    AuditEventRead,
    Outcome,
    TokenCreate,
    TokenCreated,
    TokenRead,
)
from app.core.deps import PageParams, SessionDep, SettingsDep
from app.core.pages import Page

router = APIRouter()
TokenNamePath = Annotated[str, Path(pattern=TOKEN_NAME_PATTERN)]


@router.post("/tokens", tags=["tokens"], status_code=status.HTTP_201_CREATED)
def create_token(request: Request, settings: SettingsDep, body: TokenCreate) -> TokenCreated:
    """Make a token; the response is the only place the token is ever shown."""
    request.state.audit_target = body.name
    read, token = auth_service.create_token(
        request.app.state.engine,
        settings,
        name=body.name,
        scopes=list(body.scopes),
        expires_in_days=body.expires_in_days,
    )
    return TokenCreated(**read.model_dump(), token=token)


@router.get("/tokens", tags=["tokens"])
def list_tokens(session: SessionDep) -> list[TokenRead]:
    return auth_service.list_tokens(session)


@router.delete("/tokens/{name}", tags=["tokens"], status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(request: Request, name: TokenNamePath) -> None:
    """Revoke a token at once; its row stays so the audit log and the listing still name it."""
    request.state.audit_target = name
    auth_service.revoke_token(request.app.state.engine, name=name)


@router.get("/audit", tags=["audit"])
def list_audit_events(
    session: SessionDep,
    page: PageParams,
    actor: Annotated[str | None, Query(max_length=120)] = None,
    action: Annotated[str | None, Query(max_length=200)] = None,
    outcome: Outcome | None = None,
    since: datetime | None = None,
) -> Page[AuditEventRead]:
    """Audit events, newest first."""
    return auth_service.list_events(
        session,
        limit=page[0],
        offset=page[1],
        actor=actor,
        action=action,
        outcome=outcome,
        since=since,
    )
