"""Environment commands: import, list, show, delete, and `kbmap env next` (what to collect next).

An environment is the telemetry a SOC collects (systems, their platforms, the log sources per
system); `--env NAME` on `kbmap coverage`, `kbmap gaps` and `kbmap layer` asks those questions
under it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.audit import audited
from app.cli.common import echo_json, engine, settings
from app.cli.coverage import Catalogs, Domain, Groups, Json, Platforms, Tactics, Version
from app.environment.formats import AUTO, FORMAT_IDS  # light: names the parsers, imports none

app = typer.Typer(
    help="Environments (the telemetry you collect): import, list, show, delete, next.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="env")


@app.command("import")
@audited("env import", "name", "path")
def import_(
    path: Annotated[Path, typer.Argument(help="kbmap YAML/JSON/CSV or DeTT&CT data-source file")],
    name: Annotated[
        str | None, typer.Option(help="environment name (default: from the file or its name)")
    ] = None,
    format: Annotated[
        str, typer.Option("--format", "-f", help=", ".join((AUTO, *FORMAT_IDS)))
    ] = AUTO,
    domain: Annotated[str | None, typer.Option(help="place it in this ATT&CK domain")] = None,
    version: Annotated[str | None, typer.Option(help="place it in this ATT&CK release")] = None,
    json_out: Json = False,
) -> None:
    """Import an environment (all or nothing); one of the same name is replaced atomically."""
    from app.environment import service as environment_service

    s = settings()
    result = environment_service.import_environment(
        engine(s, create=True),
        s,
        file_name=str(path),
        data=_read(path, s.limits.max_upload_bytes),
        format_id=format,
        name=name,
        domain=domain,
        version=version,
    )
    if json_out:
        echo_json(result.environment)
        return
    from app.cli.terminal import print_environment_report

    print_environment_report(result.environment, replaced=result.replaced)


def _read(path: Path, limit: int) -> bytes:
    """The file's bytes, bounded like an upload; a missing file is NotFound naming it."""
    from app.core.errors import Location, NotFound
    from app.core.limits import read_stream_bounded

    if not path.is_file():
        raise NotFound("no such file", Location(file=str(path)))
    with open(path, "rb") as fh:
        return read_stream_bounded(fh, limit=limit, name=str(path))


@app.command("list")
def list_(json_out: Json = False) -> None:
    """Loaded environments: systems, data components collected, what could not be placed."""
    from sqlmodel import Session

    from app.environment import service as environment_service

    with Session(engine()) as session:
        rows = environment_service.list_environments(session)
    if json_out:
        echo_json(rows)
        return
    from app.cli.terminal import print_environments

    print_environments(rows)


@app.command("show")
def show(name: str, json_out: Json = False) -> None:
    """One environment: its systems, each log source with the data components it provides,
    and the import report."""
    from sqlmodel import Session

    from app.environment import service as environment_service

    with Session(engine()) as session:
        env = environment_service.get_environment(session, name=name)
    if json_out:
        echo_json(env)
        return
    from app.cli.terminal import print_environment

    print_environment(env)


@app.command("delete")
@audited("env delete", "name")
def delete(name: str) -> None:
    """Remove an environment."""
    from app.environment import service as environment_service

    environment_service.delete_environment(engine(), name=name)
    typer.echo(f"deleted environment {name}")


@app.command("next")
def next_(
    name: str,
    catalog: Catalogs = None,
    platform: Platforms = None,
    tactic: Tactics = None,
    groups: Groups = None,
    domain: Domain = None,
    version: Version = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    json_out: Json = False,
) -> None:
    """What to collect next: log sources not collected, ranked by the techniques (× threat
    weight of --groups) and rules their onboarding would make effective."""
    from sqlmodel import Session

    from app.cli.coverage import make_scope
    from app.coverage import service as coverage_service

    s = settings()
    with Session(engine(s)) as session:
        scope = make_scope(
            session, domain, version, catalog, platform, tactic, groups, environment=name
        )
        page = coverage_service.collect_next(session, scope=scope, weights=s.coverage, limit=limit)
    if json_out:
        echo_json(page)
        return
    from app.cli.terminal import print_collect_next

    release = scope.release
    print_collect_next(page, title=f"{name} on ATT&CK {release.domain} {release.version}")
