"""The search page: one box, the hits grouped by kind, each linking to its kbmap page, the
release kept in every link. The ranking is the API's (`search_service.search`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from fastapi.responses import HTMLResponse

from app.attack import service as attack_service
from app.attack.deps import DomainQuery, VersionQuery
from app.core.deps import SessionDep
from app.search import service as search_service
from app.search.models import KindResults, SearchHit
from app.web import views
from app.web.rendering import page_router, render

router = page_router()

# Optional here (an empty box shows how to search), else as the API's `q`
PageSearchText = Annotated[
    str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$", description="search text")
]
KindQuery = Annotated[list[str] | None, Query(max_length=20)]
LimitQuery = Annotated[int, Query(ge=1, le=search_service.MAX_LIMIT)]
KIND_TITLE = {
    "technique": "Techniques",
    "tactic": "Tactics",
    "group": "Groups",
    "software": "Software",
    "campaign": "Campaigns",
    "mitigation": "Mitigations",
    "data-source": "Data sources",
    "data-component": "Data components",
    "detection-strategy": "Detection strategies",
    "analytic": "Analytics",
    "asset": "Assets",
    "rule": "Rules",
    "catalog": "Catalogs",
}


@router.get("/search")
def search_page(
    session: SessionDep,
    domain: DomainQuery = None,
    version: VersionQuery = None,
    q: PageSearchText = None,
    kind: KindQuery = None,
    limit: LimitQuery = 10,
) -> HTMLResponse:
    """Results of `q` in one release and the loaded catalogs; without `q`, the box alone."""
    release = attack_service.get_release(session, domain=domain, version=version)
    results = None
    if q and q.strip():
        results = search_service.search(session, release=release, q=q, kinds=kind, limit=limit)
    keep = {"domain": domain, "version": version}
    return render(
        "search.html",
        q=q or "",
        kind=kind or [],
        limit=limit,
        keep=keep,
        release=release,
        releases=attack_service.list_releases(session),
        results=results,
        groups=[_group(g, keep) for g in results.groups] if results else [],
        titles=KIND_TITLE,
        fewer=max((q or "").split(), key=len) if len((q or "").split()) > 1 else None,
    )


def _group(group: KindResults, keep: dict[str, str | None]) -> dict[str, object]:
    return {
        "kind": group.kind,
        "total": group.total,
        "hits": [_hit(h, keep) for h in group.hits],
    }


def _hit(hit: SearchHit, keep: dict[str, str | None]) -> dict[str, object]:
    """A hit as the page shows it: the kbmap link keeps only the release the reader chose."""
    return {
        "hit": hit,
        "href": page_href(hit, keep),
        "site": views.site_href(hit.id) if hit.kind not in ("rule", "catalog") else None,
    }


def page_href(hit: SearchHit, keep: dict[str, str | None]) -> str | None:
    """kbmap's page of a hit: ATT&CK ids through `views.attack_href`; a tactic, which has no
    page of its own, to the matrix; an asset (ICS) has none; rules, catalogs and objects
    without an ATT&CK id as the search service addresses them."""
    if hit.kind == "tactic":
        return "/matrix" + (f"?{q}" if (q := views.query(**keep)) else "")
    if hit.kind == "asset":
        return None
    if hit.kind not in ("rule", "catalog"):
        found = views.attack_href(hit.id, **keep)
        if found and found.startswith("/"):
            return found
    return hit.href
