"""Failures from outside the error tree, answered in its JSON format, never a text/plain 500.

A database that does not answer is 503 `database_unavailable`, a full disk under it 507
`storage_full` (`core.db.database_error` says which); anything else is a bug: 500
`internal_error`, with its traceback in the server log and not in the answer.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from app.core.config import Settings, get_settings
from app.core.db import database_error, parse_database_url
from app.core.errors import KbmapError

INTERNAL = {"code": "internal_error", "message": "internal server error"}


def add_failure_handlers(app: FastAPI) -> None:
    """Database failures inside routes, and the last resort for everything else (errors raised
    by middleware reach only the last resort, which knows database failures too)."""
    app.add_exception_handler(OperationalError, _failure)
    app.add_exception_handler(sqlite3.OperationalError, _failure)
    app.add_exception_handler(OSError, _disk_full)
    app.add_exception_handler(Exception, _failure)


async def _failure(_request: Request, exc: Exception) -> JSONResponse:
    known = database_error(exc)
    if known is None:
        body: dict[str, Any] = {"error": {**INTERNAL, "location": None, "issues": []}}
        return JSONResponse(body, status_code=500)
    return JSONResponse(known.as_dict(), status_code=known.status)


async def _disk_full(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return await _failure(request, exc)
    raise exc  # any other OSError is a bug: the last resort answers it


def environment_settings() -> Settings:
    """Settings for `uvicorn app.main:create_app --factory`: a bad value (or database URL) stops
    the start with one `kbmap:` line on stderr and exit status 1, not a traceback."""
    try:
        settings = get_settings()
        parse_database_url(settings.database_url)
    except KbmapError as exc:
        sys.stderr.write(f"kbmap: {exc}\n")
        raise SystemExit(1) from None
    return settings
