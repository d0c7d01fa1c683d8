"""Rendered pages kept under the state they were made from, so a repeat read costs one small
query and a dictionary lookup instead of a render.

What a knowledge-base page shows depends only on the loaded releases, catalogs and environments
and the request's parameters. Their state (ids, revisions, import times) is read in the request's
own snapshot and is part of the key: an ingest, import, upgrade or delete by any process changes
the key, so no page outlives what it was made from. Only whole 200 pages are kept; an error is
raised before anything is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from fastapi.responses import HTMLResponse
from sqlmodel import Session

from app.attack import service as attack_service
from app.catalog import service as catalog_service
from app.core.cache import CacheSpec, cached
from app.core.config import Settings
from app.environment import service as environment_service

PAGES: CacheSpec[bytes] = CacheSpec("web.pages", size=512, max_weight=64 << 20, weigh=len)
_STATE_SQL = (
    f"{attack_service.RELEASES_STATE_SQL} UNION ALL {catalog_service.CATALOGS_STATE_SQL} "
    f"UNION ALL {environment_service.ENVIRONMENTS_STATE_SQL} ORDER BY 1, 2"
)


def cached_page(
    session: Session,
    settings: Settings,
    key: tuple[Hashable, ...],
    make: Callable[[], HTMLResponse],
) -> HTMLResponse:
    """`make()`'s page, rendered once per state, coverage weights and `key` (the page's name and
    every parameter that changes what it shows)."""
    state = tuple(session.connection().exec_driver_sql(_STATE_SQL).all())
    full_key = (state, settings.coverage.model_dump_json(), *key)
    return HTMLResponse(cached(session, PAGES, full_key, lambda: bytes(make().body)))
