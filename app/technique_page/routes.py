"""Technique routes: the list, and the technique page (the seed's view, served as cached JSON)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Query, Request, Response

from app.attack import service as attack_service
from app.attack.deps import DomainQuery, ReleaseDep, VersionQuery
from app.attack.models import TechniqueRead
from app.catalog.deps import CatalogsQuery
from app.core.deps import IdPath, PageParams, QText, SessionDep
from app.core.pages import Page
from app.environment.deps import EnvironmentQuery
from app.technique_page import service as page_service
from app.technique_page.models import TechniquePage

router = APIRouter(tags=["techniques"])


@router.get("/techniques")
def list_techniques(
    session: SessionDep,
    release: ReleaseDep,
    page: PageParams,
    q: QText = None,
    tactic: Annotated[str | None, Query(max_length=60)] = None,
    platform: Annotated[str | None, Query(max_length=60)] = None,
    include_revoked: bool = False,
    include_deprecated: bool = False,
    subtechniques: Literal["include", "exclude", "only"] = "include",
) -> Page[TechniqueRead]:
    return attack_service.list_techniques(
        session,
        release=release,
        tactic=tactic,
        platform=platform,
        q=q,
        include_revoked=include_revoked,
        include_deprecated=include_deprecated,
        subtechniques=subtechniques,
        limit=page[0],
        offset=page[1],
    )


@router.get("/techniques/{attack_id}", response_model=TechniquePage)
async def get_technique(
    request: Request,
    attack_id: IdPath,
    domain: DomainQuery = None,
    version: VersionQuery = None,
    catalog: CatalogsQuery = None,
    environment: EnvironmentQuery = None,
) -> Response:
    """The technique page: JSON rendered once per release and catalog state, then served from
    the page cache (FastAPI's re-validation of the response model is skipped on purpose). With
    `environment`, each rule says whether it can fire there (`fires`, `systems`, `why_not`).

    Async, with the whole read in one hop to the page threads (`PAGE_THREADS` in app.main): sync
    session, release and endpoint dependencies would be four hops per request, and every database
    call in them gives up the GIL and may wait a switch interval (5 ms) to get it back."""
    read = partial(
        page_service.technique_page_json,
        request.app.state.engine,
        attack_id=attack_id,
        domain=domain,
        version=version,
        catalogs=catalog,
        environment=environment,
        settings=request.app.state.settings,
    )
    body = await anyio.to_thread.run_sync(read, limiter=request.app.state.page_threads)
    return Response(body, media_type="application/json")
