"""Auth API shapes: tokens and audit events as routes return them (tables: `tables.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field as PydanticField

from app.core.api_model import ApiModel

Scope = Literal["read", "write", "admin"]
TokenStatus = Literal["active", "expired", "revoked"]
Outcome = Literal["ok", "denied", "error"]
TOKEN_NAME_PATTERN = r"^[A-Za-z0-9._-]{1,80}$"  # no ":", so a name never looks like "cli:<user>"


class TokenCreate(ApiModel):
    name: Annotated[str, PydanticField(pattern=TOKEN_NAME_PATTERN)]
    scopes: Annotated[list[Scope], PydanticField(min_length=1, max_length=3)]
    expires_in_days: Annotated[int | None, PydanticField(ge=1, le=3650)] = None


class TokenRead(ApiModel):
    """A token as listed: never the secret or its hash; `prefix` identifies a leaked token."""

    name: str
    prefix: str
    scopes: list[str]
    status: TokenStatus
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenRead):
    """The answer to a create: the token itself, shown this once and stored nowhere."""

    token: str


class AuditEventRead(ApiModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]
