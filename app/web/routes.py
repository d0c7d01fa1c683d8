"""Server-rendered pages: home, matrix, technique, gaps, catalog report, environments, coverage
history. Thin, like the API routes.

Each route parses its query, calls the same service functions the API calls and hands the result
to a Jinja2 template (autoescaped: rule text is untrusted). Filters are plain query parameters,
so every view can be bookmarked and the pages need no JavaScript. Pages follow the API's read-auth
setting through `ReadAccess`. A KbmapError, or a bad query, becomes an HTML error page with the
error's status; the JSON error handler of the API stays untouched.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Query
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.deps import DomainQuery, LookupReleasesDep, ReleaseDep, VersionQuery
from app.catalog import service as catalog_service
from app.catalog.deps import CatalogsQuery
from app.core.deps import IdPath, SessionDep, SettingsDep
from app.coverage import service as coverage_service
from app.environment import service as environment_service
from app.environment.deps import EnvironmentPath, EnvironmentQuery
from app.history import service as history_service
from app.history.deps import HistoryScopeDep
from app.layer import service as layer_service
from app.technique_page import service as page_service
from app.web import diff_routes, object_routes, rule_routes, search_routes, views
from app.web.rendering import GroupsQuery, PlatformQuery, page_router, render

router = page_router()
# before `/techniques/{attack_id}`, which would take `T1550.001.md` and fail its id pattern
router.include_router(diff_routes.router)


@router.get("/")
def home(
    session: SessionDep,
    settings: SettingsDep,
    domain: DomainQuery = None,
    version: VersionQuery = None,
) -> HTMLResponse:
    """Loaded releases and catalogs, and the coverage of one release by every catalog."""
    releases = attack_service.list_releases(session)
    catalogs = catalog_service.list_catalogs(session)
    environments = environment_service.list_environments(session)
    summary = None
    if releases:
        if domain is None and all(r.domain != "enterprise" for r in releases):
            domain = releases[0].domain  # a mobile- or ICS-only knowledge base
        release = attack_service.get_release(session, domain=domain, version=version)
        scope = coverage_service.make_scope(session, release=release)
        summary = coverage_service.summary(session, scope=scope, weights=settings.coverage)
    return render(
        "index.html",
        releases=releases,
        catalogs=catalogs,
        environments=environments,
        summary=summary,
    )


@router.get("/matrix", response_model=None)
def matrix(
    session: SessionDep,
    settings: SettingsDep,
    release: ReleaseDep,
    catalog: CatalogsQuery = None,
    platform: PlatformQuery = None,
    groups: GroupsQuery = None,
    environment: EnvironmentQuery = None,
    domain: DomainQuery = None,
    version: VersionQuery = None,
) -> HTMLResponse | RedirectResponse:
    """The release's matrix, each technique coloured by its coverage score in the chosen scope;
    with `environment`, its page, whose matrix is coloured by effective state."""
    if environment:
        q = views.query(
            domain=domain, version=version, catalog=catalog, platform=platform, groups=groups
        )
        return RedirectResponse(f"/environments/{quote(environment)}?{q}", status_code=307)
    scope = coverage_service.make_scope(
        session, release=release, catalogs=catalog, platforms=platform, threat=groups
    )
    rows = coverage_service.technique_rows(session, scope=scope, weights=settings.coverage)
    facts = coverage_service.release_facts(session, release=release)
    tactics = attack_service.list_tactics(session, release=release)
    columns = views.matrix_columns(
        tactics, rows, facts.index, version=release.version, domain=release.domain
    )
    filters = views.query(
        domain=release.domain,
        version=release.version,
        catalog=catalog,
        platform=platform,
        groups=groups,
    )
    return render(
        "matrix.html",
        release=release,
        releases=attack_service.list_releases(session),
        catalogs=catalog_service.list_catalogs(session),
        columns=columns,
        rows=rows,
        scope=scope,
        chosen={"catalog": catalog or [], "platform": platform or [], "groups": groups or []},
        platforms=layer_service.release_platforms(session, release=release),
        filters=filters,
    )


@router.get("/techniques/{attack_id}")
def technique(
    session: SessionDep,
    releases: LookupReleasesDep,
    attack_id: IdPath,
    settings: SettingsDep,
    catalog: CatalogsQuery = None,
    environment: EnvironmentQuery = None,
) -> HTMLResponse:
    """The seed page for any technique: ATT&CK text, covering rules, detection, mitigations;
    with `environment`, whether each rule can fire there."""
    page = page_service.get_technique_page(
        session,
        releases=releases,
        attack_id=attack_id,
        catalogs=catalog,
        environment=environment,
        settings=settings,
    )
    others = [
        r
        for r in attack_service.list_releases(session)
        if r.domain == page.domain and r.version != page.version
    ]
    return render(
        "technique.html",
        page=page,
        text=views.TextRenderer(
            version=page.version,
            domain=page.domain,
            source_urls=lambda names: _cited_sources(
                session, page.domain, page.version, page.id, names
            ),
        ),
        rules=views.by_catalog(page.rules),
        sub_rules=views.by_technique(page.subtechnique_rules),
        catalog=catalog or [],
        environment=environment,
        other_releases=others,
    )


def _cited_sources(
    session: Session, domain: str, version: str, attack_id: str, names: list[str]
) -> dict[str, str]:
    """The URLs of a technique page's cited sources (asked once, when the page lists them)."""
    release = attack_service.get_release(session, domain=domain, version=version)
    rid = release.id or 0
    found = attack_service.find_object(
        session, release_id=rid, kind="technique", attack_id=attack_id
    )
    sid = found.stix_id if found else None
    return attack_service.citation_urls(session, release_id=rid, names=names, stix_id=sid)


@router.get("/gaps")
def gaps(
    session: SessionDep,
    settings: SettingsDep,
    domain: DomainQuery = None,
    version: VersionQuery = None,
    catalog: CatalogsQuery = None,
    platform: PlatformQuery = None,
    groups: GroupsQuery = None,
    environment: EnvironmentQuery = None,
    collected: Annotated[
        list[str] | None, Query(max_length=100, description="data components you collect")
    ] = None,
    min_score: Annotated[float, Query(ge=0, le=100, description="weak below this score")] = 0.0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    """Uncovered and weak techniques, highest priority first, with the reasons of each rank;
    with `environment`, the techniques not effective there (read in its domain by default)."""
    scope = coverage_service.make_scope(
        session,
        domain=domain,
        version=version,
        catalogs=catalog,
        platforms=platform,
        threat=groups,
        environment=environment,
        kb_dir=settings.kb_dir,
    )
    release = scope.release
    page = coverage_service.gap_page(
        session,
        scope=scope,
        weights=settings.coverage,
        collected=collected,
        min_score=min_score,
        limit=limit,
        offset=offset,
    )
    facts = coverage_service.release_facts(session, release=release)
    chosen = views.gap_filters(catalog, platform, groups, environment, collected, min_score)
    prev_link, next_link = views.pager(
        "/gaps",
        {"domain": release.domain, "version": release.version, **chosen},
        offset=offset,
        limit=limit,
        total=page.total,
    )
    return render(
        "gaps.html",
        release=release,
        releases=attack_service.list_releases(session),
        catalogs=catalog_service.list_catalogs(session),
        page=page,
        user_names=facts.user_names,
        components=sorted(facts.component_ids, key=str.lower),
        platforms=layer_service.release_platforms(session, release=release),
        chosen={**chosen, "min_score": min_score, "limit": limit},
        prev_link=prev_link,
        next_link=next_link,
    )


# /catalogs/{name} (the import report and the rule list) is in rule_routes.py


@router.get("/environments")
def environment_list(session: SessionDep) -> HTMLResponse:
    """The imported environments, each linking to its page."""
    return render(
        "environments.html",
        environments=environment_service.list_environments(session),
        releases=attack_service.list_releases(session),
    )


@router.get("/environments/{name}")
def environment_page(
    session: SessionDep,
    settings: SettingsDep,
    name: EnvironmentPath,
    domain: DomainQuery = None,
    version: VersionQuery = None,
    catalog: CatalogsQuery = None,
    platform: PlatformQuery = None,
    groups: GroupsQuery = None,
) -> HTMLResponse:
    """An environment: its systems and what they collect, the five-state matrix, and the log
    sources to collect next, in the newest release of its domain unless one is named (as the
    API reads it)."""
    env = environment_service.get_environment(session, name=name)
    scope = coverage_service.make_scope(
        session,
        domain=domain,
        version=version,
        catalogs=catalog,
        platforms=platform,
        threat=groups,
        environment=name,
        kb_dir=settings.kb_dir,
    )
    release = scope.release
    rows = coverage_service.technique_rows(session, scope=scope, weights=settings.coverage)
    facts = coverage_service.release_facts(session, release=release)
    columns = views.effective_columns(
        views.matrix_columns(
            attack_service.list_tactics(session, release=release),
            rows,
            facts.index,
            version=release.version,
            domain=release.domain,
        ),
        environment=name,
    )
    nxt = coverage_service.collect_next(
        session, scope=scope, weights=settings.coverage, limit=20, offset=0
    )
    params = {"catalog": catalog, "platform": platform, "groups": groups}
    return render(
        "environment.html",
        env=env,
        systems=views.system_views(env),
        release=release,
        releases=attack_service.list_releases(session),
        catalogs=catalog_service.list_catalogs(session),
        platforms=layer_service.release_platforms(session, release=release),
        chosen={"catalog": catalog or [], "platform": platform or [], "groups": groups or []},
        scope=scope,
        columns=columns,
        legend=views.state_legend(rows),
        total=len(rows),
        next_page=nxt,
        filters=views.query(
            domain=release.domain, version=release.version, environment=name, **params
        ),
    )


@router.get("/history")
def history(
    session: SessionDep,
    scope: HistoryScopeDep,
    since: Annotated[
        str | None,
        Query(max_length=40, description="a snapshot id, a date (YYYY-MM-DD) or an ISO time"),
    ] = None,
) -> HTMLResponse:
    """A scope's coverage over time: the trend chart, every point, and the techniques that moved
    since `since` (by default the point before the last: the last change)."""
    trend = history_service.coverage_history(session, scope=scope)
    since = since or views.last_change(trend.points)
    changes = history_service.coverage_changes(session, scope=scope, since=since, limit=500)
    return render(
        "history.html",
        scope=scope,
        named=views.scope_words(scope),
        delta_href=views.delta_href(scope, trend.points),
        chart=views.trend_chart(trend),
        rows=views.history_rows(trend.points),
        changes=changes,
        filters=views.history_query(scope),
        catalogs=catalog_service.list_catalogs(session),
        environments=environment_service.list_environments(session),
        domains=sorted({r.domain for r in attack_service.list_releases(session)}),
    )


for _pages in (object_routes, rule_routes, search_routes):
    router.include_router(_pages.router)
