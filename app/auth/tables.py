"""Auth tables (ApiToken, AuditEvent).

A token row holds the key id in clear (the lookup) and only a keyed hash of the secret; no API shape
carries the hash, and only `TokenCreated` carries the token, once, in the response that made it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


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
