"""Mounts every domain's routes under /api/v1; the error model is declared once here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from app.attack.routes import router as attack_router
from app.catalog.routes import router as catalog_router
from app.coverage.routes import router as coverage_router
from app.refresh.routes import router as refresh_router


class ErrorBody(BaseModel):
    code: str
    message: str
    location: dict[str, Any] | None = None
    issues: list[dict[str, Any]] = []


class ErrorResponse(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 422, 503)
}

api_router = APIRouter(responses=ERRORS)
api_router.include_router(attack_router)
api_router.include_router(catalog_router)
api_router.include_router(coverage_router)
api_router.include_router(refresh_router)
