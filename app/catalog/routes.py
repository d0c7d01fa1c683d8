"""Catalog routes: upload, list, show, delete, export, upgrade; rules."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request, Response, UploadFile, status
from starlette.concurrency import run_in_threadpool

from app.auth.deps import WriteAccess
from app.catalog import service as catalog_service
from app.catalog import upgrade as catalog_upgrade
from app.catalog.deps import CatalogsQuery
from app.catalog.export import EXPORTS, MEDIA
from app.catalog.models import CatalogRead, RuleFull, RuleRead
from app.catalog.source import source_from_bytes
from app.catalog.upgrade import UpgradeReport
from app.core.config import Settings
from app.core.deps import PageParams, QText, SessionDep, SettingsDep, read_upload
from app.core.pages import Page

router = APIRouter()
NamePath = Annotated[str, Path(max_length=80, pattern=r"^[A-Za-z0-9._-]+$")]
# checked by the service against `EXPORTS`, whose error lists them (one list, route and CLI)
ExportFormat = Annotated[
    str,
    Query(max_length=20, description=", ".join(EXPORTS), json_schema_extra={"enum": [*EXPORTS]}),
]


def _inline_defs(node: Any, defs: dict[str, Any]) -> Any:
    """A JSON Schema with its `#/$defs/...` references replaced by the definitions: inside an
    OpenAPI document such a reference would point at the document's root, not the schema's."""
    if isinstance(node, list):
        return [_inline_defs(x, defs) for x in node]
    if not isinstance(node, dict):
        return node
    if str(node.get("$ref", "")).startswith("#/$defs/"):
        target = defs[node["$ref"].rsplit("/", 1)[1]]
        return _inline_defs({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    skip = ("$schema", "$id", "$defs")
    return {k: _inline_defs(v, defs) for k, v in node.items() if k not in skip}


def _export_content() -> dict[str, Any]:
    """The export's media types for OpenAPI: YAML (the default format), CSV, and JSON described
    by the shipped canonical catalog schema. CSV comes before JSON because generators read the
    first type they know (openapi-python-client: text) and then read every format as text."""
    kb_dir: Any = Settings.model_fields["kb_dir"].default
    schema = json.loads((kb_dir / "schemas" / "canonical-catalog.schema.json").read_bytes())
    return {
        MEDIA["yaml"]: {"schema": {"type": "string"}},
        MEDIA["csv"]: {"schema": {"type": "string"}},
        MEDIA["json"]: {"schema": _inline_defs(schema, schema.get("$defs", {}))},
        EXPORTS["stix"]: {"schema": {"type": "string", "description": "a STIX 2.1 bundle"}},
    }


@router.post(
    "/catalogs",
    tags=["catalogs"],
    status_code=status.HTTP_201_CREATED,
    dependencies=[WriteAccess],
)
async def import_catalog(
    request: Request,
    settings: SettingsDep,
    file: UploadFile,
    format: Annotated[str, Form(max_length=40)] = "auto",
    name: Annotated[str | None, Form(max_length=80)] = None,
    domain: Annotated[str | None, Form(max_length=40)] = None,
    version: Annotated[str | None, Form(max_length=20, pattern=r"^\d+\.\d+$")] = None,
) -> CatalogRead:
    """Upload a catalog (any format, or a .tar.gz of rule files); replaces a same-named one."""
    data = await read_upload(file, settings)
    request.state.audit_target = name or file.filename or "upload"
    # unpacking, parsing and the write take a second or more: off the event loop serving reads
    source = await run_in_threadpool(
        source_from_bytes, file.filename or "upload", data, settings.limits
    )
    result = await run_in_threadpool(
        catalog_service.import_catalog,
        request.app.state.engine,
        settings,
        source=source,
        format_id=format,
        name=name,
        domain=domain,
        version=version,
    )
    request.state.audit_target = result.catalog.name
    return result.catalog


@router.get("/catalogs", tags=["catalogs"])
def list_catalogs(session: SessionDep) -> list[CatalogRead]:
    return catalog_service.list_catalogs(session)


@router.get("/catalogs/{name}", tags=["catalogs"])
def get_catalog(session: SessionDep, name: NamePath) -> CatalogRead:
    return catalog_service.get_catalog(session, name=name)


@router.get(
    "/catalogs/{name}/export",
    tags=["catalogs"],
    response_class=Response,
    responses={
        200: {
            "description": "the catalog in the canonical format or STIX 2.1",
            "content": _export_content(),
        }
    },
)
def export_catalog(session: SessionDep, name: NamePath, format: ExportFormat = "yaml") -> Response:
    """The catalog in kbmap's canonical format (YAML, JSON, CSV) or as a STIX 2.1 bundle."""
    content, media, filename = catalog_service.export_catalog(session, name=name, fmt=format)
    return Response(
        content,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.delete(
    "/catalogs/{name}",
    tags=["catalogs"],
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[WriteAccess],
)
def delete_catalog(request: Request, name: NamePath) -> None:
    catalog_service.delete_catalog(request.app.state.engine, name=name)


@router.post("/catalogs/{name}/upgrade", tags=["catalogs"], dependencies=[WriteAccess])
def upgrade_catalog(
    request: Request,
    settings: SettingsDep,
    name: NamePath,
    to: Annotated[str, Query(max_length=20, pattern=r"^\d+\.\d+$", examples=["18.1"])],
    domain: Annotated[str | None, Query(max_length=40)] = None,
) -> UpgradeReport:
    """Rewrite the catalog's mappings to release `to`, keeping each pre-upgrade id as provenance."""
    request.state.audit_target = name
    return catalog_upgrade.upgrade_catalog(
        request.app.state.engine, settings, name=name, domain=domain, version=to
    )


@router.get("/rules", tags=["rules"])
def list_rules(
    session: SessionDep,
    page: PageParams,
    catalog: CatalogsQuery = None,
    technique: Annotated[str | None, Query(max_length=20)] = None,
    subtechniques: bool = Query(False, description="with technique: include its sub-techniques"),
    tactic: Annotated[str | None, Query(max_length=60)] = None,
    data_component: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[str | None, Query(max_length=40)] = None,
    outcome: Annotated[
        Literal["ok", "remapped", "deprecated", "unknown", "wrong_domain", "unparsable"] | None,
        Query(),
    ] = None,
    q: QText = None,
) -> Page[RuleRead]:
    return catalog_service.list_rules(
        session,
        catalogs=catalog,
        technique=technique,
        include_subtechniques=subtechniques,
        tactic=tactic,
        data_component=data_component,
        status=status,
        outcome=outcome,
        q=q,
        limit=page[0],
        offset=page[1],
    )


@router.get("/rules/{catalog}/{rule_id:path}", tags=["rules"])
def get_rule(
    session: SessionDep, catalog: NamePath, rule_id: Annotated[str, Path(max_length=300)]
) -> RuleFull:
    return catalog_service.get_rule(session, catalog=catalog, rule_id=rule_id)
