"""Auth tables (ApiToken, AuditEvent) and their API shapes.

A token row holds the key id in clear (the lookup) and only a keyed hash of the secret; no API shape
carries the hash, and only `TokenCreated` carries the token, once, in the response that made it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from app.core.api_model import ApiModel

Scope = Literal["read", "write", "admin"]
TokenStatus = Literal["active", "expired", "revoked"]
Outcome = Literal["ok", "denied", "error"]
TOKEN_NAME_PATTERN = r"^[A-Za-z0-9._-]{1,80}$"  # no ":", so a name never looks like "cli:<user>"


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(unique=True, index=True)
    name: str = Field(unique=True, index=True)
    secret_hash: str
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    actor: str = Field(index=True)  # token name, "cli:<os user>", or "anonymous"
    action: str  # "POST /api/v1/catalogs", "catalog import", ...
    target: str
    outcome: str  # ok, denied, error
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


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
