"""Dependencies every route may use: settings, the request's read session, paging, id paths.

They sit on the floor they serve (Netflix Dispatch keeps `DbSession` in `database/core.py`): any
domain's routes import them without reaching up into the API package.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request, UploadFile
from sqlmodel import Session

from app.core.config import Settings
from app.core.db import read_session
from app.core.errors import Location, TooLarge
from app.core.exposure import public_url


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session_dep(request: Request) -> Iterator[Session]:
    """One read session per request, on one snapshot (never a mix of two commits)."""
    request.app.state.schema()  # made or upgraded here if the database was down at start
    with read_session(request.app.state.engine) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session_dep)]


def get_public_url_dep(request: Request, settings: SettingsDep) -> str:
    """Where links point: KBMAP_PUBLIC_URL, else the address this connection reached; never the
    request's Host header, which the client chooses."""
    return public_url(settings, request.scope)


PublicUrlDep = Annotated[str, Depends(get_public_url_dep)]


async def page_params(
    settings: SettingsDep,
    limit: Annotated[
        int, Query(ge=1, description="page size (capped by KBMAP_LIMIT_MAX_PAGE)")
    ] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> tuple[int, int]:
    return min(limit, settings.limits.max_page), offset


PageParams = Annotated[tuple[int, int], Depends(page_params)]
# no control characters: a NUL would cut the pattern on SQLite and fail the query on PostgreSQL
QText = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        description="text in id, name or description (matched literally, any case)",
    ),
]
IdPath = Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9._-]+$")]


async def read_upload(file: UploadFile, settings: Settings) -> bytes:
    """An uploaded file's bytes, read no further than one byte over the upload limit: over it is
    TooLarge naming the file (the body guard already refuses larger bodies before they are read)."""
    limit = settings.limits.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"upload exceeds the limit of {limit} bytes", Location(file=file.filename))
    return data
