"""create_app(settings): the FastAPI application, its lifespan and its error rendering."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api import docs
from app.api.audit import AuditWrites
from app.api.body_limit import BodyLimit
from app.api.failures import add_failure_handlers, environment_settings
from app.api.http_guards import AllowedHosts, SecurityHeaders
from app.api.router import NOT_READY, Readiness, api_router
from app.core.cache import caches_of
from app.core.config import Settings
from app.core.db import make_engine, schema_at_start
from app.core.errors import KbmapError
from app.history import service as history_service
from app.mcp import http as mcp_http
from app.models import METADATA
from app.web.rendering import STATIC_DIR, error_page
from app.web.routes import router as web_router

# Worker threads for technique pages, apart from the 40 the other sync routes share. A cached page
# is a few short database calls, each giving up the GIL and waiting for it again; with dozens of
# threads at it they mostly wait (measured on PostgreSQL, two workers: 40 threads 820-890
# pages/s, 6-12 threads 900-1,300), and heavy reports cannot crowd pages out of their threads.
PAGE_THREADS = 8
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def _operation_id(route: APIRoute) -> str:
    """The route function's name (`list_mitigations`, `get_technique`): generated clients name
    their calls after it, so names are unique across the API (tests/api/test_openapi.py)."""
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or environment_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        app.state.engine = engine
        history_service.attach(engine, settings)  # every change below records its snapshot
        app.state.caches = caches_of(engine)  # every derived-data cache of this database
        app.state.schema = schema_at_start(
            engine, METADATA
        )  # a database down: 503s until it is back
        app.state.page_threads = anyio.CapacityLimiter(PAGE_THREADS)
        async with mcp_http.running(app.state, engine, settings):  # /mcp's handler
            yield
        engine.dispose()

    app = FastAPI(
        title="kbmap",
        summary="ATT&CK knowledge base, detection-rule catalogs, coverage and gaps",
        version="0.1.0",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        docs_url=None,  # app/api/docs.py serves /docs offline, behind the read guard
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.exposures = {}  # server port → Exposure, filled by the first request through it

    add_failure_handlers(app)
    app.add_exception_handler(KbmapError, _kbmap_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    _pages_get_html(app)  # pages answer errors as HTML, the API and MCP as JSON
    app.include_router(health_router)
    app.include_router(api_router, prefix="/api/v1")
    docs.mount(app)
    mcp_http.mount(app.router)  # MCP for assistants, behind the read guard of its own
    app.include_router(web_router)  # server-rendered pages at the root
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(AuditWrites, settings=settings)
    app.add_middleware(BodyLimit, max_upload_bytes=settings.limits.max_upload_bytes)
    app.add_middleware(AllowedHosts)  # before anything reads or writes (DNS rebinding)
    app.add_middleware(SecurityHeaders)  # outermost: every response has the headers, a 400 too
    return app


# ---- error rendering and health, at the edge ----------------------------------------------


# Paths whose errors stay JSON: the API (and its schema), MCP and the health probes. Any other
# path is a page (or was meant to be one: `/techniques/`, `/no-such-page`), so its error is an
# HTML page with the same status, readable in a browser and linking back to the overview.
_JSON_PREFIXES = ("/api/", "/mcp", "/healthz", "/readyz", "/openapi.json")
_KEPT_HEADERS = ("allow", "retry-after", "www-authenticate")


def _wants_page(request: Request) -> bool:
    path = request.url.path
    return not (path == "/api" or path.startswith(_JSON_PREFIXES))


def _pages_get_html(app: FastAPI) -> None:
    """Every error handler, wrapped: on a page path its JSON error becomes the HTML error page
    with the same status, code and message. Call it after the last handler is added."""
    for key, handler in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _html_on_pages(handler)


def _html_on_pages(handler: Any) -> Any:
    async def handle(request: Request, exc: Exception) -> Response:
        response: Response = await handler(request, exc)
        if not _wants_page(request) or not isinstance(response, JSONResponse):
            return response
        error = json.loads(bytes(response.body)).get("error") or {}
        page = error_page(
            response.status_code, str(error.get("code", "error")), str(error.get("message", ""))
        )
        for key in _KEPT_HEADERS:
            if key in response.headers:
                page.headers[key] = response.headers[key]
        return page

    return handle


async def _kbmap_error(_request: Request, exc: KbmapError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None  # RFC 6750
    return JSONResponse(exc.as_dict(), status_code=exc.status, headers=headers)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """The framework's own refusals (an unparsable body, no such route) in the error format."""
    body: dict[str, Any] = {
        "error": {
            "code": HTTP_CODES.get(exc.status_code, "error"),
            "message": str(exc.detail),
            "location": None,
            "issues": [],
        }
    }
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    issues = [
        {
            "message": e.get("msg", ""),
            "severity": "error",
            "location": {
                "file": None,
                "line": None,
                "field": ".".join(str(p) for p in e.get("loc", ())),
            },
        }
        for e in exc.errors()
    ]
    field = str(issues[0]["location"]["field"]) if issues else ""
    message = str(issues[0]["message"]) if issues else "invalid request"
    body = {
        "error": {
            "code": "invalid_input",
            "message": f"{field}: {message}",
            "location": issues[0]["location"] if issues else None,
            "issues": issues,
        }
    }
    return JSONResponse(body, status_code=422)


health_router = APIRouter()


@health_router.get("/healthz", tags=["health"])
def get_health() -> dict[str, str]:
    return {"status": "ok"}


@health_router.get("/readyz", tags=["health"], response_model=Readiness, responses=NOT_READY)
def get_readiness(request: Request) -> JSONResponse:
    try:
        request.app.state.schema()
        with request.app.state.engine.connect() as conn:
            releases = conn.execute(text("SELECT count(*) FROM release")).scalar_one()
    except Exception:
        return JSONResponse({"status": "database unreachable"}, status_code=503)
    if not releases:
        return JSONResponse({"status": "no ATT&CK release loaded"}, status_code=503)
    return JSONResponse({"status": "ready", "releases": releases})
