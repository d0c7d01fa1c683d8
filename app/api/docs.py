"""/openapi.json and /docs (Swagger UI), working offline and behind the read guard.

FastAPI's own page loads its scripts from a CDN (a blank page without one) and starts them with
an inline script, which the Content-Security-Policy forbids. This page loads the Swagger UI 5 files
that the `fastapi-offline` package ships (able to show OpenAPI 3.1), served here under
/docs/assets, and starts it with a small script of ours. ReDoc is not offered: its page loads a
logo from its vendor's CDN. The schema and the page follow the read-auth setting like every read;
the assets are public, as /static is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from app.auth.deps import ReadAccess

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs/assets"  # files of the package, as shipped
START_URL = "/docs/start.js"  # our start script
OPENAPI_URL = "/openapi.json"
# The page that starts the bundled viewer: scripts from here only, never inline; Swagger UI sets
# style attributes and adds <style> elements.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kbmap API</title>
<link rel="icon" href="{root}{assets}/favicon.png">
<link rel="stylesheet" href="{root}{assets}/swagger-ui.css"></head>
<body><div id="viewer" data-openapi="{root}{openapi}"></div>
<script src="{root}{assets}/swagger-ui-bundle.js"></script>
<script src="{root}{start}"></script></body></html>
"""
_START = """const el = document.getElementById('viewer');
window.ui = SwaggerUIBundle({
  url: el.dataset.openapi, dom_id: '#viewer', deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis], layout: 'BaseLayout'
});
"""

router = APIRouter(include_in_schema=False, dependencies=[ReadAccess])
public = APIRouter(include_in_schema=False)


@router.get(OPENAPI_URL)
def openapi_schema(request: Request) -> JSONResponse:
    spec: dict[str, Any] = request.app.openapi()
    return JSONResponse(spec)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    html = _PAGE.format(root=root, assets=ASSETS_URL, start=START_URL, openapi=OPENAPI_URL)
    return HTMLResponse(html, headers={"Content-Security-Policy": DOCS_CSP})


@public.get(START_URL)
def swagger_start() -> Response:
    return Response(_START, media_type="text/javascript")


def mount(app: FastAPI) -> None:
    """The guarded schema and page; the public start script and bundled assets."""
    app.include_router(router)
    app.include_router(public)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
