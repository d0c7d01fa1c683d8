"""Auth API shapes: tokens and audit events as routes return them (tables: `tables.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict
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


Scalar = str | int | float | bool | None


class RequestDetail(ApiModel):
    """What an API request's event records (`api/audit.py`)."""

    model_config = ConfigDict(extra="forbid")

    status: int
    path: str
    client: str | None  # the client's address, when the server knows it


class CommandDetail(ApiModel):
    """What a CLI command's event records (`cli/audit.py`): its plain arguments (paths as text,
    other objects as their type's name), and what ended it, if it failed."""

    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Scalar | list[Scalar]]
    error: str | None = PydanticField(default=None, exclude_if=lambda v: v is None)


class AuditEventRead(ApiModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    # an event of another shape (none is written today) is passed through as it was stored
    detail: RequestDetail | CommandDetail | dict[str, Any] = PydanticField(
        union_mode="left_to_right"
    )
