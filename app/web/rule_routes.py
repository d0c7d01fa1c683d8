"""Rule pages, the catalog page with its rule list, and the catalog comparison page (issue 18).

Thin, like the other pages: parse the query, ask the catalog and coverage services, hand the
answer to a template. A rule that does not exist, or a filter value the catalog does not know, is
an HTML error page naming what is known (never an empty page).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.deps import DomainQuery, VersionQuery
from app.catalog import service as catalog_service
from app.core.config import Settings
from app.core.deps import QText, SessionDep, SettingsDep
from app.core.errors import InvalidInput, Location
from app.coverage import service as coverage_service
from app.web import rule_pages
from app.web.page_cache import cached_page
from app.web.rendering import NamePath, page_router, render

router = page_router()

RuleIdPath = Annotated[str, Path(max_length=300, description="the rule's id, URL-quoted")]
Filter = Annotated[str | None, Query(max_length=60, pattern=r"^[^\x00-\x1f\x7f]*$")]
CompareCatalogs = Annotated[
    list[str] | None, Query(max_length=20, description="the two catalogs: A, then B")
]


@router.get("/catalogs/{name}")
def catalog_page(
    session: SessionDep,
    name: NamePath,
    technique: Filter = None,
    tactic: Filter = None,
    outcome: Filter = None,
    status: Filter = None,
    q: QText = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    """A catalog's import report, then its rules (filtered by technique, tactic, mapping
    outcome, status or text in id/title; paged), each linking to its page."""
    catalog = catalog_service.get_catalog(session, name=name)
    rules = catalog_service.catalog_rule_page(
        session,
        catalog=name,
        technique=technique,
        tactic=tactic,
        outcome=outcome,
        status=status,
        q=q,
        limit=limit,
        offset=offset,
    )
    prev_link, next_link = rule_pages.list_pager(rules)
    loaded = [  # oldest first, as list_releases orders them
        r.version for r in attack_service.list_releases(session) if r.domain == catalog.domain
    ]
    return render(
        "catalog.html",
        catalog=catalog,
        diff_href=rule_pages.diff_href(name, catalog.domain, catalog.attack_version, loaded),
        rules=rules,
        others=[c.name for c in catalog_service.list_catalogs(session) if c.name != name],
        outcomes=list(rule_pages.OUTCOME_WORDS),
        lines=rule_pages.list_lines(rules),
        prev_link=prev_link,
        next_link=next_link,
    )


@router.get("/catalogs/{name}/rules/{rule_id:path}")
def rule_page(
    session: SessionDep, settings: SettingsDep, name: NamePath, rule_id: RuleIdPath
) -> HTMLResponse:
    """Every field of one rule, its mappings and their outcomes, its telemetry links, and the
    environments where it can fire."""
    detail = catalog_service.get_rule_detail(session, catalog=name, rule_id=rule_id)
    places = coverage_service.rule_places(
        session,
        catalog=name,
        rule_id=rule_id,
        domain=detail.domain,
        version=detail.version,
        kb_dir=settings.kb_dir,
        weights=settings.coverage,
    )
    release = attack_service.find_release(session, domain=detail.domain, version=detail.version)
    ids = {}
    if release is not None:
        ids = coverage_service.release_facts(session, release=release).component_ids
    return render(
        "rule.html",
        d=detail,
        r=detail.rule,
        mappings=rule_pages.mapping_views(detail.rule.mappings),
        extra=rule_pages.extra_rows(detail.rule.extra),
        log_source_text=rule_pages.log_source_text,
        component_ids=ids,
        places=places,
        catalog_href=rule_pages.catalog_href(name),
    )


@router.get("/compare")
def compare_page(
    session: SessionDep,
    settings: SettingsDep,
    catalog: CompareCatalogs = None,
    domain: DomainQuery = None,
    version: VersionQuery = None,
) -> HTMLResponse:
    """Two catalogs side by side on one release: coverage per tactic and overall, the
    techniques only one covers, those both cover. Without catalogs, the form to pick two.
    Kept rendered under the state it was made from (two coverage computations per miss)."""
    key = ("compare", tuple(catalog or ()), domain, version)
    return cached_page(
        session, settings, key, lambda: _compare_page(session, settings, catalog, domain, version)
    )


def _compare_page(
    session: Session,
    settings: Settings,
    catalog: list[str] | None,
    domain: str | None,
    version: str | None,
) -> HTMLResponse:
    catalogs = [c.name for c in catalog_service.list_catalogs(session)]
    scope = coverage_service.make_scope(session, domain=domain, version=version)
    cmp = None
    if catalog:
        if len(catalog) != 2 or catalog[0] == catalog[1]:
            raise InvalidInput(
                f"compare takes two different catalogs (catalog=A&catalog=B), got "
                f"{', '.join(catalog)}; known: {', '.join(catalogs) or 'none'}",
                Location(field="catalog"),
            )
        catalog_service.catalog_ids(session, catalog)  # an unknown name: 404 listing them
        cmp = coverage_service.compare_catalogs(
            session, scope=scope, a=[catalog[0]], b=[catalog[1]], weights=settings.coverage
        )
    release = scope.release
    tactics = attack_service.list_tactics(session, release=release)
    index = coverage_service.release_facts(session, release=release).index.techniques
    names = {tid: info.name for tid, info in index.items()}
    return render(
        "compare.html",
        release=release,
        releases=attack_service.list_releases(session),
        catalogs=catalogs,
        chosen=catalog or [],
        cmp=cmp,
        lines=rule_pages.compare_lines(cmp, tactics) if cmp else [],
        overall=rule_pages.compare_overall(cmp) if cmp else None,
        sets=rule_pages.technique_sets(cmp, names, version=release.version, domain=release.domain)
        if cmp
        else {},
    )
