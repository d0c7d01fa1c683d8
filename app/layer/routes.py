"""Layer routes: Navigator layers as downloads, the same layer as SVG or XLSX, layer import; the
coverage history's trend chart.

The picture routes are declared before `/layers/{kind}`, which would otherwise claim
`coverage.svg` as a kind.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request, Response, UploadFile, status
from starlette.concurrency import run_in_threadpool

from app.auth.deps import WriteAccess
from app.catalog.models import CatalogRead
from app.core.deps import PublicUrlDep, SessionDep, SettingsDep, read_upload
from app.coverage.deps import ScopeDep
from app.history import service as history_service
from app.history.deps import HistoryScopeDep
from app.layer import chart
from app.layer import service as layer_service
from app.layer.kinds import described
from app.layer.navigator import Layer
from app.layer.service import KindName, LayerRequest

router = APIRouter(prefix="/layers", tags=["layers"])


def get_layer_request(
    base_url: PublicUrlDep,
    kind: KindName,
    collected: Annotated[
        list[str] | None,
        Query(max_length=100, description="telemetry, gaps: data components you collect"),
    ] = None,
    a: Annotated[list[str] | None, Query(max_length=20, description="compare: side A")] = None,
    b: Annotated[list[str] | None, Query(max_length=20, description="compare: side B")] = None,
    from_version: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=20,
            pattern=r"^\d+(\.\d+)?$",
            description="diff: older release (default: the one before `to`); "
            "delta: a snapshot id of the coverage history",
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(
            max_length=20,
            pattern=r"^\d+(\.\d+)?$",
            description="diff: newer release; delta: a snapshot id (default: now)",
        ),
    ] = None,
    min_score: Annotated[
        float,
        Query(
            ge=0,
            le=100,
            description="coverage: lowest score shown (the effective score with environment=); "
            "gaps: weak below it",
        ),
    ] = 0.0,
) -> LayerRequest:
    """Every kind's options in one query string (each kind takes its own); links point back at
    this server."""
    return LayerRequest(
        kind=kind,
        base_url=base_url,
        collected=collected or [],
        a=a or [],
        b=b or [],
        from_version=from_version,
        to_version=to,
        min_score=min_score,
    )


LayerRequestDep = Annotated[LayerRequest, Depends(get_layer_request)]


def _picture(media: str, what: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answer of a picture route: one binary media type."""
    content = {media: {"schema": {"type": "string", "format": "binary"}}}
    return {200: {"description": what, "content": content}}


def _attachment(content: bytes, media: str, filename: str) -> Response:
    return Response(
        content,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/{kind}.svg", response_class=Response, responses=_picture(layer_service.SVG, "a heat map")
)
def get_layer_svg(
    session: SessionDep, settings: SettingsDep, scope: ScopeDep, req: LayerRequestDep
) -> Response:
    """The layer as a matrix heat map (tactic columns in matrix order)."""
    content, media, name = layer_service.render_layer(
        session, scope=scope, req=req, weights=settings.coverage, fmt="svg"
    )
    return _attachment(content, media, name)


@router.get(
    "/{kind}.xlsx", response_class=Response, responses=_picture(layer_service.XLSX, "a workbook")
)
def get_layer_xlsx(
    session: SessionDep, settings: SettingsDep, scope: ScopeDep, req: LayerRequestDep
) -> Response:
    """The layer as a workbook: coloured matrix, one row per entry, legend."""
    content, media, name = layer_service.render_layer(
        session, scope=scope, req=req, weights=settings.coverage, fmt="xlsx"
    )
    return _attachment(content, media, name)


@router.get(
    "/{kind}",
    response_class=Response,
    description=f"An ATT&CK Navigator layer of {described()}.",
    responses={
        200: {
            "model": Layer | list[Layer],
            "description": "a Navigator 4.5 layer (a list when split)",
        }
    },
)
def get_layer(
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    req: LayerRequestDep,
    split: Annotated[
        Literal["platform"] | None, Query(description="one layer per platform, in one file")
    ] = None,
) -> Response:
    """The layer file; the description names every kind from the registry. `environment=`
    judges the layer by that environment's telemetry (effective and visibility need it; a kind
    it means nothing to refuses it)."""
    content, name = layer_service.layer_file(
        session,
        scope=scope,
        req=dataclasses.replace(req, split=split),
        weights=settings.coverage,
    )
    return _attachment(content, "application/json", name)


@router.post("/import", status_code=status.HTTP_201_CREATED, dependencies=[WriteAccess])
async def import_layer(
    request: Request,
    settings: SettingsDep,
    file: UploadFile,
    name: Annotated[str, Form(max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")],
    domain: Annotated[str | None, Form(max_length=40)] = None,
    version: Annotated[str | None, Form(max_length=20, pattern=r"^\d+\.\d+$")] = None,
) -> CatalogRead:
    """A Navigator layer (one or a list) becomes the catalog `name`, replacing a same-named one.

    An actor layer imported this way is a catalog like any other: compare it with your rules
    through `/coverage/compare?a=<actor layer>&b=<your catalogs>`.
    """
    data = await read_upload(file, settings)
    request.state.audit_target = name
    return await run_in_threadpool(  # the import's write, off the event loop that serves reads
        layer_service.import_layer,
        request.app.state.engine,
        settings,
        data=data,
        filename=file.filename or "layer.json",
        name=name,
        domain=domain,
        version=version,
    )


# ---- the coverage history as a chart ----------------------------------------------------------
# A router of its own: the path is the history's (/coverage/history.svg, beside the JSON), the
# chart is drawn here because the matrix palette lives in this domain (history sits below it).
history_chart_router = APIRouter(tags=["history"])


@history_chart_router.get(
    "/coverage/history.svg",
    response_class=Response,
    responses=_picture(layer_service.SVG, "a trend chart"),
)
def get_coverage_history_svg(
    session: SessionDep,
    scope: HistoryScopeDep,
    from_: Annotated[datetime | None, Query(alias="from", description="first time kept")] = None,
    to: Annotated[datetime | None, Query(description="last time kept")] = None,
) -> Response:
    """`/coverage/history` as a trend chart: covered (and effective) over time, each point's
    change in its tooltip, drops in red."""
    history = history_service.coverage_history(session, scope=scope, start=from_, end=to)
    return Response(chart.trend_svg(history), media_type=layer_service.SVG)
