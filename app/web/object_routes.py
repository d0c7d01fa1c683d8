"""Group, software, campaign, mitigation, data source, data component, detection strategy and
analytic pages: the ATT&CK object, what it links to, and your coverage, rules and telemetry.

One GET route per kind, all alike and thin: `object_ask.object_page` reads and renders, and the
rendered page is kept under the state it was made from (`page_cache`).
"""

from __future__ import annotations

from fastapi.responses import HTMLResponse

from app.attack.deps import LookupReleasesDep
from app.catalog.deps import CatalogsQuery
from app.core.deps import SessionDep, SettingsDep
from app.environment.deps import EnvironmentQuery
from app.web import object_pages as op
from app.web.object_ask import object_page
from app.web.page_cache import cached_page
from app.web.rendering import NamePath, page_router

router = page_router()


def _route(folder: str, kind: str) -> None:
    """One GET route per kind, all alike."""

    def page(
        session: SessionDep,
        settings: SettingsDep,
        releases: LookupReleasesDep,
        ref: NamePath,
        catalog: CatalogsQuery = None,
        environment: EnvironmentQuery = None,
    ) -> HTMLResponse:
        chosen = tuple(sorted(set(catalog or ())))
        key = (kind, ref, tuple(r.id for r in releases), chosen, environment)
        return cached_page(
            session,
            settings,
            key,
            lambda: object_page(
                session,
                settings,
                releases,
                kind=kind,
                ref=ref,
                catalog=list(chosen) or None,
                environment=environment,
            ),
        )

    page.__doc__ = f"The {op.KIND_TITLE[kind].lower()} page: /{folder}/{{ATT&CK id}}."
    router.add_api_route(f"/{folder}/{{ref}}", page, methods=["GET"], name=f"{kind}_page")


for _kind, _folder in op.KIND_FOLDER.items():
    _route(_folder, _kind)
