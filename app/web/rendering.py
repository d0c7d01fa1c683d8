"""What every page module shares: the Jinja2 environment, `render`, HTML error pages and the
page router factory, so each group of pages can live in its own module (`object_routes.py`,
`rule_routes.py`, …) without importing the others.

Templates are autoescaped (rule text is untrusted) and strict (a missing name is a bug, not an
empty string). A KbmapError, or a bad query, raised by a page becomes an HTML error page with the
error's status; the API's JSON errors stay untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.auth.deps import ReadAccess
from app.core.errors import KbmapError
from app.web import views

HERE = FsPath(__file__).resolve().parent
STATIC_DIR = HERE / "static"

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals.update(
    attack_href=views.attack_href,
    site_href=views.site_href,
    technique_href=views.technique_href,
    query=views.query,
    rule_line=views.rule_line,
    score_fill=views.score_fill,
    signed=views.signed,
)

NamePath = Annotated[str, Path(max_length=80, pattern=r"^[A-Za-z0-9._-]+$")]
PlatformQuery = Annotated[list[str] | None, Query(max_length=20, description="platform(s)")]
GroupsQuery = Annotated[
    list[str] | None,
    Query(max_length=50, description="groups, software, campaigns: id, name or alias"),
]


def render(
    template: str,
    /,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """One template as a whole HTML response (rendered in one go: pages are small)."""
    return HTMLResponse(_env.get_template(template).render(**context), status_code, headers)


def error_page(status: int, code: str, message: str) -> HTMLResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None  # as the API (RFC 6750)
    return render(
        "error.html", status_code=status, headers=headers, status=status, code=code, message=message
    )


class HtmlErrorRoute(APIRoute):
    """Turns errors raised by a page's dependencies or service calls into HTML error pages.

    A route class rather than an app-wide exception handler, so /api/v1 keeps its JSON errors.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except KbmapError as exc:
                return error_page(exc.status, exc.code, exc.message)
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                    for e in exc.errors()
                )
                return error_page(422, "invalid_input", problems or "invalid request")

        return route


def page_router() -> APIRouter:
    """A router of HTML pages: HTML errors, the API's read guard, out of the OpenAPI schema."""
    return APIRouter(
        route_class=HtmlErrorRoute,
        dependencies=[ReadAccess],
        default_response_class=HTMLResponse,
        include_in_schema=False,
    )
