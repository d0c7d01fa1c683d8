"""The technique page: the ATT&CK side (`attack_side`) with the rules that cover the technique,
for the API (as cached JSON), the CLI (`kbmap technique`) and the web page alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine
from sqlmodel import Session

from app.attack import service as attack_service
from app.catalog import service as catalog_service
from app.core.cache import CacheSpec, caches_of
from app.core.db import autocommit_connection, read_session
from app.technique_page.attack_side import attack_side
from app.technique_page.models import TechniquePage

if TYPE_CHECKING:
    from app.attack.tables import Release


def get_technique_page(
    session: Session,
    *,
    releases: list[Release],
    attack_id: str,
    catalogs: list[str] | None = None,
) -> TechniquePage:
    """The ATT&CK page with its rules: exact mappings, and its sub-techniques' rules apart."""
    names = catalog_service.catalog_ids(session, catalogs)
    return _with_rules(session, releases=releases, attack_id=attack_id, names=names)


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


def technique_page_json(
    engine: Engine,
    *,
    attack_id: str,
    domain: str | None = None,
    version: str | None = None,
    catalogs: list[str] | None = None,
) -> bytes:
    """The technique page with its rules as JSON, cached (see `PAGES`). A hit costs one
    statement outside any transaction; a miss renders on one snapshot, under the state read in
    that snapshot."""
    params = (
        attack_id.upper(),
        domain.lower() if domain else None,
        version,
        tuple(sorted(set(catalogs or ()))),
    )
    caches = caches_of(engine)
    with autocommit_connection(engine) as conn:
        page = caches.get(PAGES).get((_state(conn), *params))
    if page is not None:
        return page
    with read_session(engine) as session:
        state = _state(session.connection())

        def scope() -> tuple[list[Release], dict[int, str]]:
            releases = attack_service.releases_for_lookup(session, domain=domain, version=version)
            return releases, catalog_service.catalog_ids(session, catalogs)

        def render() -> bytes:
            releases, names = caches.get(SCOPES).get_or_make((state, *params[1:]), scope)
            full = _with_rules(session, releases=releases, attack_id=attack_id, names=names)
            return full.model_dump_json().encode()

        return caches.get(PAGES).get_or_make((state, *params), render)


def _state(conn: Connection) -> tuple[Any, ...]:
    return tuple(conn.exec_driver_sql(_STATE_SQL).all())
