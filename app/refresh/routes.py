"""Admin trigger for a refresh: thin — parse the request, call the service, return its report.

The route is synchronous, so FastAPI runs it in a worker thread and a slow download does not stall
the event loop. Protection (admin token) is applied where the router is mounted.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, Field

from app.refresh import service as refresh_service
from app.refresh.service import RefreshReport

router = APIRouter()


class RefreshRequest(BaseModel):
    """What to refresh; every field is optional (default: newest of every domain)."""

    domains: Annotated[list[Annotated[str, Field(max_length=20)]] | None, Field(max_length=3)] = (
        None
    )
    version: Annotated[str | None, Field(max_length=20, examples=["18.1"])] = None
    dry_run: bool = False


@router.post("/refresh", tags=["refresh"])
def refresh(
    request: Request, body: Annotated[RefreshRequest | None, Body()] = None
) -> RefreshReport:
    params = body or RefreshRequest()
    return refresh_service.refresh(
        request.app.state.engine,
        request.app.state.settings,
        domains=params.domains,
        version=params.version,
        dry_run=params.dry_run,
    )
