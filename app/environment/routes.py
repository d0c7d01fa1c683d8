"""Environment routes: upload (create or replace), list, show, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response, UploadFile, status
from starlette.concurrency import run_in_threadpool

from app.auth.deps import WriteAccess
from app.core.deps import SessionDep, SettingsDep, read_upload
from app.environment import service as environment_service
from app.environment.deps import EnvironmentPath
from app.environment.models import EnvironmentBrief, EnvironmentRead

router = APIRouter()
FormatForm = Annotated[str, Form(max_length=40, description="auto, kbmap or dettect")]
DomainForm = Annotated[str | None, Form(max_length=40)]
VersionForm = Annotated[str | None, Form(max_length=20, pattern=r"^\d+\.\d+$")]


async def _upload(
    request: Request,
    settings: SettingsDep,
    file: UploadFile,
    *,
    name: str | None,
    format_id: str,
    domain: str | None,
    version: str | None,
    replace: bool,
) -> environment_service.ImportResult:
    """Read the upload within the limit and import it off the event loop."""
    data = await read_upload(file, settings)
    request.state.audit_target = name or file.filename or "upload"
    return await run_in_threadpool(
        environment_service.import_environment,
        request.app.state.engine,
        settings,
        file_name=file.filename or "upload",
        data=data,
        format_id=format_id,
        name=name,
        domain=domain,
        version=version,
        create_only=not replace,
    )


@router.post(
    "/environments",
    tags=["environments"],
    status_code=status.HTTP_201_CREATED,
    dependencies=[WriteAccess],
)
async def create_environment(
    request: Request,
    settings: SettingsDep,
    file: UploadFile,
    name: Annotated[str | None, Form(max_length=80)] = None,
    format: FormatForm = "auto",
    domain: DomainForm = None,
    version: VersionForm = None,
) -> EnvironmentRead:
    """Upload an environment (kbmap YAML/JSON/CSV or a DeTT&CT data-source administration
    file); 409 when the name exists (replace it with PUT /environments/{name})."""
    result = await _upload(
        request,
        settings,
        file,
        name=name,
        format_id=format,
        domain=domain,
        version=version,
        replace=False,
    )
    request.state.audit_target = result.environment.name
    return result.environment


@router.put("/environments/{name}", tags=["environments"], dependencies=[WriteAccess])
async def replace_environment(
    request: Request,
    response: Response,
    settings: SettingsDep,
    name: EnvironmentPath,
    file: UploadFile,
    format: FormatForm = "auto",
    domain: DomainForm = None,
    version: VersionForm = None,
) -> EnvironmentRead:
    """Create or replace the environment `name` in one transaction (201 when it is new)."""
    result = await _upload(
        request,
        settings,
        file,
        name=name,
        format_id=format,
        domain=domain,
        version=version,
        replace=True,
    )
    if not result.replaced:
        response.status_code = status.HTTP_201_CREATED
    return result.environment


@router.get("/environments", tags=["environments"])
def list_environments(session: SessionDep) -> list[EnvironmentBrief]:
    return environment_service.list_environments(session)


@router.get("/environments/{name}", tags=["environments"])
def get_environment(session: SessionDep, name: EnvironmentPath) -> EnvironmentRead:
    return environment_service.get_environment(session, name=name)


@router.delete(
    "/environments/{name}",
    tags=["environments"],
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[WriteAccess],
)
def delete_environment(request: Request, name: EnvironmentPath) -> None:
    request.state.audit_target = name
    environment_service.delete_environment(request.app.state.engine, name=name)
