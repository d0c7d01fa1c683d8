"""/openapi.json, /docs (Swagger UI) and /redoc, working offline and behind the read guard.

FastAPI's own pages load their scripts from a CDN (a blank page without one) and start them with
an inline script, which the Content-Security-Policy forbids. These pages load the assets that the
`fastapi-offline` package ships (Swagger UI 5 and ReDoc 2, both able to show OpenAPI 3.1), served
here under /docs/assets, and start them with a small script of ours. The schema and both pages
follow the read-auth setting like every read; the assets are public, as /static is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from app.api.deps import ReadAccess

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs/assets"  # files of the package, as shipped
START_URL = "/docs/start"  # our two start scripts
OPENAPI_URL = "/openapi.json"
# Pages that start a bundled viewer: scripts from here only, never inline. The viewers set style
# attributes and ReDoc adds <style> elements and runs its search in a blob: worker.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="icon" href="{root}{assets}/favicon.png">{head}</head>
<body><div id="viewer" data-openapi="{root}{openapi}"></div>
<script src="{root}{assets}/{bundle}"></script>
<script src="{root}{start_url}/{start}"></script></body></html>
"""
_START = {
    "swagger-start.js": (
        "const el = document.getElementById('viewer');\n"
        "window.ui = SwaggerUIBundle({url: el.dataset.openapi, dom_id: '#viewer', "
        "deepLinking: true, presets: [SwaggerUIBundle.presets.apis], "
        "layout: 'BaseLayout'});\n"
    ),
    "redoc-start.js": (
        "const el = document.getElementById('viewer');\nRedoc.init(el.dataset.openapi, {}, el);\n"
    ),
}

router = APIRouter(include_in_schema=False, dependencies=[ReadAccess])


def _page(request: Request, *, title: str, bundle: str, start: str, head: str = "") -> HTMLResponse:
    root = request.scope.get("root_path", "")
    html = _PAGE.format(
        title=title,
        root=root,
        assets=ASSETS_URL,
        start_url=START_URL,
        openapi=OPENAPI_URL,
        bundle=bundle,
        start=start,
        head=head,
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": DOCS_CSP})


@router.get(OPENAPI_URL)
def openapi_schema(request: Request) -> JSONResponse:
    spec: dict[str, Any] = request.app.openapi()
    return JSONResponse(spec)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    css = f'\n<link rel="stylesheet" href="{root}{ASSETS_URL}/swagger-ui.css">'
    return _page(
        request,
        title="kbmap API",
        bundle="swagger-ui-bundle.js",
        start="swagger-start.js",
        head=css,
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return _page(request, title="kbmap API", bundle="redoc.standalone.js", start="redoc-start.js")


public = APIRouter(include_in_schema=False)


@public.get(f"{START_URL}/swagger-start.js")
def swagger_start() -> Response:
    return Response(_START["swagger-start.js"], media_type="text/javascript")


@public.get(f"{START_URL}/redoc-start.js")
def redoc_start() -> Response:
    return Response(_START["redoc-start.js"], media_type="text/javascript")


def mount(app: FastAPI) -> None:
    """The guarded schema and pages; the public start scripts and bundled assets."""
    app.include_router(router)
    app.include_router(public)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
