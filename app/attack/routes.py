"""ATT&CK read routes: thin — parse, call one service function, return its read model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from app.api.deps import LookupReleasesDep, PageParams, QText, ReleaseDep, SessionDep
from app.attack import service as attack_service
from app.attack.models import ObjectRead, ReleaseRead, TacticRead, TechniquePage, TechniqueRead
from app.core.pages import Page

router = APIRouter()
IdPath = Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9._-]+$")]


@router.get("/releases", tags=["releases"])
def list_releases(session: SessionDep) -> list[ReleaseRead]:
    return attack_service.list_releases(session)


@router.get("/techniques", tags=["techniques"])
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


@router.get("/techniques/{attack_id}", tags=["techniques"])
def get_technique(session: SessionDep, releases: LookupReleasesDep, attack_id: IdPath) -> TechniquePage:
    return attack_service.get_technique_page(session, releases=releases, attack_id=attack_id)


@router.get("/tactics", tags=["tactics"])
def list_tactics(session: SessionDep, release: ReleaseDep) -> list[TacticRead]:
    return attack_service.list_tactics(session, release=release)


def _add_object_routes(path: str, kind: str, tag: str) -> None:
    """List and detail routes for one ATT&CK object kind (mitigations, groups, ...)."""

    def list_route(
        session: SessionDep, release: ReleaseDep, page: PageParams, q: QText = None,
        include_revoked: bool = False, include_deprecated: bool = False,
    ) -> Page[dict[str, Any]]:  # fmt: skip
        return attack_service.list_objects(
            session, release=release, kind=kind, q=q, include_revoked=include_revoked,
            include_deprecated=include_deprecated, limit=page[0], offset=page[1],
        )  # fmt: skip

    def detail_route(session: SessionDep, releases: LookupReleasesDep, attack_id: IdPath) -> ObjectRead:
        return attack_service.get_object_read(session, releases=releases, kind=kind, attack_id=attack_id)

    fn = kind.replace("-", "_")
    router.add_api_route(f"/{path}", list_route, methods=["GET"], tags=[tag],
                         name=f"list_{fn}", summary=f"List {tag}")  # fmt: skip
    router.add_api_route(f"/{path}/{{attack_id}}", detail_route, methods=["GET"], tags=[tag],
                         name=f"get_{fn}", summary=f"One {kind.replace('_', ' ')} with related objects")  # fmt: skip


for _path, _kind in (
    ("mitigations", "mitigation"),
    ("groups", "group"),
    ("software", "software"),
    ("campaigns", "campaign"),
    ("data-sources", "data_source"),
    ("data-components", "data_component"),
    ("detection-strategies", "detection_strategy"),
    ("analytics", "analytic"),
    ("assets", "asset"),
):
    _add_object_routes(_path, _kind, _path)
