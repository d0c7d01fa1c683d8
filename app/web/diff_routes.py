"""The release diff page and the technique Markdown export.

`/diff` shows what the API's `/releases/diff` and `kbmap diff` compute (`refresh.impact`), with
each catalog's impact: which rules name techniques the newer release revoked, deprecated or
removed, and what they become. `/techniques/{id}.md` is the technique page in Markdown, from the
renderer the MCP `technique_page` tool uses, so a wiki and an assistant read the same text.

The main page router includes this one before its `/techniques/{attack_id}`, so that
`T1550.001.md` reaches the export rather than failing the page's id pattern.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Path, Query
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.deps import LookupReleasesDep
from app.catalog import service as catalog_service
from app.catalog.deps import CatalogsQuery
from app.core.config import Settings
from app.core.deps import SessionDep, SettingsDep
from app.environment.deps import EnvironmentQuery
from app.refresh import impact
from app.technique_page import service as page_service
from app.technique_page.markdown import technique_markdown
from app.web import diff_pages
from app.web.page_cache import cached_page
from app.web.rendering import page_router, render

router = page_router()

ReleaseVersionQuery = Annotated[
    str | None, Query(max_length=20, description="ATT&CK release, e.g. 17.1")
]
FromQuery = Annotated[str | None, Query(alias="from", max_length=20, examples=["17.1"])]
DiffDomainQuery = Annotated[str, Query(max_length=40, description="enterprise, mobile or ics")]
TechniqueIdPath = Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9._-]+$")]


@router.get("/diff")
def release_diff(
    session: SessionDep,
    settings: SettingsDep,
    from_: FromQuery = None,
    to: ReleaseVersionQuery = None,
    domain: DiffDomainQuery = "enterprise",
    catalog: CatalogsQuery = None,
) -> HTMLResponse:
    """What changed from one release to another, and what it does to each catalog's rules;
    without both releases, the form to pick them (400, listing the loaded versions)."""
    form = {"domain": domain, "from": from_, "to": to, "catalog": catalog or []}
    if not from_ or not to:
        return _pick_releases(session, form)
    key = ("diff", domain, from_, to, tuple(sorted(set(catalog or ()))))
    # the slowest page (each catalog's mappings and its coverage on both releases): kept
    return cached_page(session, settings, key, lambda: _diff_page(session, settings, form=form))


def _pick_releases(session: Session, form: dict[str, Any]) -> HTMLResponse:
    """The form alone, as a 400 that names what is loaded: a diff needs both releases."""
    releases = attack_service.list_releases(session)
    loaded = ", ".join(f"{r.domain} {r.version}" for r in releases) or "none"
    return render(
        "diff.html",
        status_code=400,
        diff=None,
        problem=f"pick two releases: from and to; loaded: {loaded}",
        form=form,
        releases=releases,
        catalogs=catalog_service.list_catalogs(session),
    )


def _diff_page(session: Session, settings: Settings, *, form: dict[str, Any]) -> HTMLResponse:
    """The diff of `form`'s releases with each catalog's impact, rendered."""
    d = impact.release_diff(
        session,
        domain=form["domain"],
        from_version=form["from"],
        to_version=form["to"],
        catalogs=form["catalog"] or None,
        weights=settings.coverage,
    )
    return render(
        "diff.html",
        diff=d,
        problem=None,
        form=form,
        releases=attack_service.list_releases(session),
        catalogs=catalog_service.list_catalogs(session),
        techniques=diff_pages.technique_sections(d),
        others=diff_pages.other_sections(d),
        impacts=[(c, diff_pages.impact_rows(c)) for c in d.catalogs],
    )


@router.get("/techniques/{attack_id}.md", response_class=Response)
def technique_markdown_export(
    session: SessionDep,
    releases: LookupReleasesDep,
    attack_id: TechniqueIdPath,
    settings: SettingsDep,
    catalog: CatalogsQuery = None,
    environment: EnvironmentQuery = None,
) -> Response:
    """The technique page as Markdown (the MCP tool's text), to paste into a wiki."""
    page = page_service.get_technique_page(
        session,
        releases=releases,
        attack_id=attack_id,
        catalogs=catalog,
        environment=environment,
        settings=settings,
    )
    filename = quote(f"{page.id}-{page.domain}-{page.version}.md")
    return Response(
        technique_markdown(page),
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
