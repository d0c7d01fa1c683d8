"""The technique page: the ATT&CK side (`attack_side`) with the rules that cover the technique,
for the API (as cached JSON), the CLI (`kbmap technique`) and the web page alike. With an
environment, each rule says whether it can fire there (`coverage_service.rule_firing`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine
from sqlmodel import Session

from app.attack import service as attack_service
from app.catalog import service as catalog_service
from app.catalog.models import RuleRef
from app.core.cache import CacheSpec, caches_of
from app.core.db import autocommit_connection, read_session
from app.coverage import service as coverage_service
from app.environment import service as environment_service
from app.technique_page.attack_side import attack_side
from app.technique_page.models import TechniquePage

if TYPE_CHECKING:
    from app.attack.tables import Release
    from app.core.config import Settings


def get_technique_page(
    session: Session,
    *,
    releases: list[Release],
    attack_id: str,
    catalogs: list[str] | None = None,
    environment: str | None = None,
    settings: Settings | None = None,
) -> TechniquePage:
    """The ATT&CK page with its rules: exact mappings, and its sub-techniques' rules apart;
    with `environment` (which needs `settings`), whether each rule can fire there."""
    names = catalog_service.catalog_ids(session, catalogs)
    if environment:
        environment_service.environment_telemetry(session, name=environment)  # 404 first
    page = _with_rules(session, releases=releases, attack_id=attack_id, names=names)
    if not environment:
        return page
    return _with_firing(session, page, releases, environment, names, _needed(settings))


def _with_firing(
    session: Session,
    page: TechniquePage,
    releases: list[Release],
    environment: str,
    names: dict[int, str],
    settings: Settings,
) -> TechniquePage:
    """The page's rules, each judged in the environment under the page's own release."""
    release = next(r for r in releases if (r.domain, r.version) == (page.domain, page.version))
    scope = coverage_service.make_scope(
        session,
        release=release,
        catalogs=list(names.values()),
        environment=environment,
        kb_dir=settings.kb_dir,
    )
    refs = [*page.rules, *page.subtechnique_rules]
    found = coverage_service.rule_firing(
        session,
        scope=scope,
        rules=[(r.catalog, r.rule_id) for r in refs],
        weights=settings.coverage,
    )

    def judged(rules: list[RuleRef]) -> list[RuleRef]:
        return [r.model_copy(update=found[(r.catalog, r.rule_id)]._asdict()) for r in rules]

    return page.model_copy(
        update={"rules": judged(page.rules), "subtechnique_rules": judged(page.subtechnique_rules)}
    )


def _with_rules(
    session: Session, *, releases: list[Release], attack_id: str, names: dict[int, str]
) -> TechniquePage:
    page = attack_side(session, releases=releases, attack_id=attack_id)
    subs = [s.id for s in page.subtechniques if s.id]
    found = catalog_service.rules_for_techniques(session, techniques=[page.id, *subs], names=names)
    return page.model_copy(  # the ATT&CK side is shared: the rules go on a copy
        update={
            "rules": found.get(page.id, []),
            "subtechnique_rules": [r for s in subs for r in found.get(s, [])],
        }
    )


# Rendered pages, the API's hottest read. A page is made of a release and of the catalogs' rules,
# so the key holds every release's and every catalog's state (`_STATE_SQL`), read in the
# request's own snapshot, with the request's parameters (which, given that state, pick the same
# release): an ingest, import, upgrade or delete by any process changes the key, and no page
# outlives what it was made from.
PAGE_CACHE_BYTES = 64 << 20
PAGES: CacheSpec[bytes] = CacheSpec(
    "technique_page.json", size=4096, max_weight=PAGE_CACHE_BYTES, weigh=len
)
# What a request's domain, version and catalogs resolve to, given the same state: the releases
# to look in and the catalogs' names (a third of a page's render time when queried each time).
SCOPES: CacheSpec[tuple[list[Release], dict[int, str]]] = CacheSpec("technique_page.scope", 256)
# One plain statement: through the ORM a cache hit would cost five times as much
_STATE_SQL = (
    f"{attack_service.RELEASES_STATE_SQL} UNION ALL {catalog_service.CATALOGS_STATE_SQL} "
    "ORDER BY 1, 2"
)
# With an environment, its state too: a re-import or a delete changes the key
_ENV_STATE_SQL = (
    f"{attack_service.RELEASES_STATE_SQL} UNION ALL {catalog_service.CATALOGS_STATE_SQL} "
    f"UNION ALL {environment_service.ENVIRONMENTS_STATE_SQL} ORDER BY 1, 2"
)


def technique_page_json(
    engine: Engine,
    *,
    attack_id: str,
    domain: str | None = None,
    version: str | None = None,
    catalogs: list[str] | None = None,
    environment: str | None = None,
    settings: Settings | None = None,
) -> bytes:
    """The technique page with its rules as JSON, cached (see `PAGES`). A hit costs one
    statement outside any transaction; a miss renders on one snapshot, under the state read in
    that snapshot. With `environment` (which needs `settings`), each rule's firing there: the
    key then holds the environments' state, the name and the coverage weights too."""
    params = (
        attack_id.upper(),
        domain.lower() if domain else None,
        version,
        tuple(sorted(set(catalogs or ()))),
    )
    judged = _judged_params(environment, settings)
    caches = caches_of(engine)
    with autocommit_connection(engine) as conn:
        page = caches.get(PAGES).get((_state(conn, judged), *params, *judged))
    if page is not None:
        return page
    with read_session(engine) as session:
        state = _state(session.connection(), judged)

        def scope() -> tuple[list[Release], dict[int, str]]:
            releases = attack_service.releases_for_lookup(session, domain=domain, version=version)
            return releases, catalog_service.catalog_ids(session, catalogs)

        def render() -> bytes:
            releases, names = caches.get(SCOPES).get_or_make((state, *params[1:]), scope)
            full = _with_rules(session, releases=releases, attack_id=attack_id, names=names)
            if environment:
                full = _with_firing(session, full, releases, environment, names, _needed(settings))
            return full.model_dump_json().encode()

        if environment:  # an unknown one is a 404 listing the known, never a cached page
            environment_service.environment_telemetry(session, name=environment)
        return caches.get(PAGES).get_or_make((state, *params, *judged), render)


def _judged_params(environment: str | None, settings: Settings | None) -> tuple[str, ...]:
    """The key's part for an environment: its name and the weights that say what counts."""
    if not environment:
        return ()
    return (environment, _needed(settings).coverage.model_dump_json())


def _needed(settings: Settings | None) -> Settings:
    if settings is None:
        raise ValueError("an environment needs the settings")  # a caller's bug, not input
    return settings


def _state(conn: Connection, judged: tuple[str, ...] = ()) -> tuple[Any, ...]:
    return tuple(conn.exec_driver_sql(_ENV_STATE_SQL if judged else _STATE_SQL).all())
