"""ATT&CK read routes: thin — parse, call one service function, return its read model."""

from __future__ import annotations

from fastapi import APIRouter

from app.attack import service as attack_service
from app.attack.deps import LookupReleasesDep, ReleaseDep
from app.attack.models import ObjectRead, ObjectSummary, ReleaseRead, TacticRead
from app.core.deps import IdPath, PageParams, QText, SessionDep
from app.core.pages import Page

router = APIRouter()


@router.get("/releases", tags=["releases"])
def list_releases(session: SessionDep) -> list[ReleaseRead]:
    return attack_service.list_releases(session)


@router.get("/tactics", tags=["tactics"])
def list_tactics(session: SessionDep, release: ReleaseDep) -> list[TacticRead]:
    return attack_service.list_tactics(session, release=release)


def _add_object_routes(path: str, kind: str, tag: str) -> None:
    """List and detail routes for one ATT&CK object kind (mitigations, groups, ...)."""

    def list_route(
        session: SessionDep,
        release: ReleaseDep,
        page: PageParams,
        q: QText = None,
        include_revoked: bool = False,
        include_deprecated: bool = False,
    ) -> Page[ObjectSummary]:
        return attack_service.list_objects(
            session,
            release=release,
            kind=kind,
            q=q,
            include_revoked=include_revoked,
            include_deprecated=include_deprecated,
            limit=page[0],
            offset=page[1],
        )

    def detail_route(
        session: SessionDep, releases: LookupReleasesDep, attack_id: IdPath
    ) -> ObjectRead:
        return attack_service.get_object_read(
            session, releases=releases, kind=kind, attack_id=attack_id
        )

    router.add_api_route(
        f"/{path}",
        list_route,
        methods=["GET"],
        tags=[tag],
        name=f"list_{path.replace('-', '_')}",  # the operation id: list_mitigations
        summary=f"List {tag}",
    )
    router.add_api_route(
        f"/{path}/{{attack_id}}",
        detail_route,
        methods=["GET"],
        tags=[tag],
        name=f"get_{kind}",
        summary=f"One {kind.replace('_', ' ')} with related objects",
    )


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
