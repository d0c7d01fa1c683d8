"""Admin trigger for a refresh, and the release diff: thin — parse, call one service, return.

The route is synchronous, so FastAPI runs it in a worker thread and a slow download does not stall
the event loop. A refresh changes the knowledge base, so it needs a write token (WriteAccess).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import ConfigDict, Field

from app.auth.deps import WriteAccess
from app.catalog.deps import CatalogsQuery
from app.core.api_model import ApiModel
from app.core.config import Settings
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import InvalidInput
from app.refresh import impact
from app.refresh import service as refresh_service
from app.refresh.models import ReleaseDiff
from app.refresh.service import RefreshReport

if TYPE_CHECKING:
    from sqlalchemy import Engine

router = APIRouter()


class RefreshRequest(ApiModel):
    """What to refresh; every field is optional (default: newest of every domain). A field it
    does not know is refused, never ignored (a misspelt `dry_run` must not fetch)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    domains: Annotated[list[Annotated[str, Field(max_length=20)]] | None, Field(max_length=3)] = (
        None
    )
    version: Annotated[str | None, Field(max_length=20, examples=["18.1"])] = None
    dry_run: bool = False
    # "taxii": the collections of the configured TAXII 2.1 server (KBMAP_TAXII_URL)
    source: Literal["index", "taxii"] = "index"
    collection: Annotated[str | None, Field(max_length=200)] = None


@router.post("/refresh", tags=["refresh"], dependencies=[WriteAccess])
def refresh_releases(
    request: Request, body: Annotated[RefreshRequest | None, Body()] = None
) -> RefreshReport:
    params = body or RefreshRequest()
    if params.source == "taxii" or params.collection:
        return _from_taxii(request.app.state.engine, request.app.state.settings, params)
    return refresh_service.refresh(
        request.app.state.engine,
        request.app.state.settings,
        domains=params.domains,
        version=params.version,
        dry_run=params.dry_run,
    )


def _from_taxii(engine: Engine, settings: Settings, params: RefreshRequest) -> RefreshReport:
    """The configured TAXII server's collections; the CLI's `--taxii` flow, its settings."""
    if params.source != "taxii":
        raise InvalidInput('"collection" goes with "source": "taxii"')
    if params.version is not None:
        raise InvalidInput(
            '"source": "taxii" loads the release each collection holds: no "version"'
        )
    if settings.taxii_url is None:
        raise InvalidInput("this server has no TAXII server configured (KBMAP_TAXII_URL)")
    from app.refresh import taxii  # its client library loads only for a TAXII refresh

    return taxii.refresh_taxii(
        engine,
        settings,
        url=settings.taxii_url,
        collection=params.collection,
        domains=params.domains,
        user=settings.taxii_user,
        dry_run=params.dry_run,
    )


VERSION = r"^\d+\.\d+$"


@router.get("/releases/diff", tags=["releases"])
def get_release_diff(
    session: SessionDep,
    settings: SettingsDep,
    from_: Annotated[str, Query(alias="from", max_length=20, pattern=VERSION, examples=["17.1"])],
    to: Annotated[str, Query(max_length=20, pattern=VERSION, examples=["18.1"])],
    domain: Annotated[str, Query(max_length=40)] = "enterprise",
    catalog: CatalogsQuery = None,
    text: Annotated[bool, Query(description="include full old and new descriptions")] = False,
) -> ReleaseDiff:
    """What changed between two loaded releases of a domain, and what it does to each catalog."""
    return impact.release_diff(
        session,
        domain=domain,
        from_version=from_,
        to_version=to,
        catalogs=catalog,
        with_text=text,
        weights=settings.coverage,
    )
