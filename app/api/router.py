"""Mounts every domain's routes under /api/v1; the error model is declared once here.

The read guard sits on this parent router, so every route mounted here, including ones added
later, needs at least read access (principle 12); the token and audit routes add the admin guard,
write routes add WriteAccess on their own decorators. Only /healthz and /readyz (`main.py`) are
public. The same parent router refuses a query parameter a route does not declare
(`deps.reject_unknown_query`), so a misspelt filter is a 422, never an unfiltered answer.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from app.api.known_query import KnownQueryOnly
from app.attack.routes import router as attack_router
from app.auth.deps import AdminAccess, ReadAccess
from app.auth.routes import router as auth_router
from app.catalog.routes import router as catalog_router
from app.core.api_model import ApiModel
from app.coverage.routes import router as coverage_router
from app.environment.routes import router as environment_router
from app.history.routes import router as history_router
from app.layer.routes import history_chart_router
from app.layer.routes import router as layer_router
from app.refresh.routes import router as refresh_router
from app.search.routes import router as search_router
from app.technique_page.routes import router as technique_page_router


class ErrorLocation(ApiModel):
    """Where the problem sits (`core.errors.Location`): any part may be unknown."""

    file: str | None = None
    line: int | None = None
    field: str | None = None


class ErrorIssue(ApiModel):
    """One of several problems found in one input (`core.errors.Issue`)."""

    message: str
    severity: str = "error"
    location: ErrorLocation | None = None


class ErrorBody(ApiModel):
    code: str
    message: str
    location: ErrorLocation | None = None
    issues: list[ErrorIssue] = Field(default_factory=list)


class ErrorResponse(ApiModel):
    error: ErrorBody


class Readiness(ApiModel):
    """/readyz: "ready" with the number of loaded releases, or why the service is not ready."""

    status: str
    releases: int | None = None


NOT_READY: dict[int | str, dict[str, Any]] = {503: {"model": Readiness}}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 422, 500, 503, 507)
}

api_router = APIRouter(responses=ERRORS, dependencies=[ReadAccess, KnownQueryOnly])
api_router.include_router(attack_router)
api_router.include_router(technique_page_router)
api_router.include_router(catalog_router)
api_router.include_router(environment_router)
api_router.include_router(coverage_router)
api_router.include_router(history_router)
api_router.include_router(history_chart_router)
api_router.include_router(layer_router)
api_router.include_router(refresh_router)
api_router.include_router(search_router)
api_router.include_router(auth_router, dependencies=[AdminAccess])
