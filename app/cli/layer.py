"""Layer commands: `kbmap layer <kind> [filters] -o FILE [--svg|--xlsx]`, `kbmap layer import`.

Every kind takes the same filters as the API (`GET /api/v1/layers/{kind}`); options a kind does
not use are ignored. Without -o the JSON (or SVG) goes to stdout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from app.cli.audit import audited
from app.cli.common import engine, settings
from app.cli.coverage import Catalogs, Env, Groups, Platforms, Tactics, make_scope
from app.layer.kinds import KINDS  # light: the service stack loads inside commands

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.layer.kinds import KindName, LayerRequest

Names = Annotated[list[str] | None, typer.Option(help="repeatable or comma-separated")]
Release = Annotated[str | None, typer.Option(help="ATT&CK release, e.g. 18.1")]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="file to write")]


def register(root: typer.Typer) -> None:
    app = typer.Typer(help="ATT&CK Navigator layers and matrix pictures.", no_args_is_help=True)
    for kind in KINDS.values():
        app.command(kind.name, help=kind.help)(_layer_command(kind.name))
    app.command("import")(import_layer)
    root.add_typer(app, name="layer")


def _layer_command(kind: KindName) -> Callable[..., None]:
    def command(
        catalog: Catalogs = None,
        platform: Platforms = None,
        tactic: Tactics = None,
        groups: Groups = None,
        domain: Annotated[str | None, typer.Option(help="enterprise, mobile or ics")] = None,
        version: Release = None,
        env: Env = None,
        collected: Names = None,
        a: Names = None,
        b: Names = None,
        from_version: Annotated[
            str | None, typer.Option("--from", help="diff: older release; delta: snapshot id")
        ] = None,
        to: Annotated[
            str | None, typer.Option(help="diff: newer release; delta: snapshot id (default: now)")
        ] = None,
        min_score: Annotated[float, typer.Option(min=0, max=100)] = 0.0,
        split_platform: Annotated[
            bool, typer.Option("--split-platform", help="one layer per platform, in one file")
        ] = False,
        output: Output = None,
        svg: Annotated[bool, typer.Option("--svg", help="write the matrix as SVG")] = False,
        xlsx: Annotated[bool, typer.Option("--xlsx", help="write the matrix as XLSX")] = False,
        base_url: Annotated[
            str | None,
            typer.Option(
                help="where layer links point (default: KBMAP_PUBLIC_URL, else host:port)"
            ),
        ] = None,
    ) -> None:
        from app.layer.service import LayerRequest

        if svg and xlsx:
            raise typer.BadParameter("choose one of --svg and --xlsx")
        if xlsx and output is None:
            raise typer.BadParameter("--xlsx needs --output FILE")
        s = settings()
        req = LayerRequest(
            kind=kind,
            base_url=(base_url or s.public_url or f"http://{s.host}:{s.port}").rstrip("/"),
            collected=collected or [],
            a=a or [],
            b=b or [],
            from_version=from_version,
            to_version=to,
            min_score=min_score,
            split="platform" if split_platform else None,
        )
        fmt: Literal["svg", "xlsx"] | None = "svg" if svg else "xlsx" if xlsx else None
        filters = (domain, version, catalog, platform, tactic, groups)
        _write(_layer_bytes(s, req, filters, fmt, env), output)

    command.__doc__ = KINDS[kind].help
    return command


# the scope options, in `make_scope`'s order: domain, version, catalog, platform, tactic, groups
_Filters = tuple[
    str | None, str | None, list[str] | None, list[str] | None, list[str] | None, list[str] | None
]


def _layer_bytes(
    s: Settings,
    req: LayerRequest,
    filters: _Filters,
    fmt: Literal["svg", "xlsx"] | None,
    env: str | None = None,
) -> bytes:
    """The layer file, or its matrix picture when `fmt` names one; under environment `env`."""
    from sqlmodel import Session

    from app.layer import service as layer_service

    with Session(engine(s)) as session:
        scope = make_scope(session, *filters, environment=env)
        if fmt:
            return layer_service.render_layer(
                session, scope=scope, req=req, weights=s.coverage, fmt=fmt
            )[0]
        return layer_service.layer_file(session, scope=scope, req=req, weights=s.coverage)[0]


def _write(content: bytes, output: Path | None) -> None:
    if output is None:
        typer.echo(content.decode())
        return
    output.write_bytes(content)
    typer.echo(f"wrote {output} ({len(content)} bytes)")


@audited("layer import", "name", "path")
def import_layer(
    path: Annotated[Path, typer.Argument(help="Navigator layer file (one layer or a list)")],
    name: Annotated[str, typer.Option("--name", "-n", help="catalog name to create or replace")],
    domain: Annotated[str | None, typer.Option(help="override the layer's domain")] = None,
    version: Release = None,
) -> None:
    """Import a Navigator layer as a catalog: one rule per scored or annotated technique entry.

    An actor layer imported this way can be compared with your rules:
    `kbmap coverage --a <name> --b <your catalog>`.
    """
    from app.core.errors import Location, NotFound
    from app.core.limits import read_stream_bounded
    from app.layer import service as layer_service

    s = settings()
    if not path.is_file():
        raise NotFound("no such file", Location(file=str(path)))
    with open(path, "rb") as fh:
        data = read_stream_bounded(fh, limit=s.limits.max_upload_bytes, name=str(path))
    catalog = layer_service.import_layer(
        engine(s), s, data=data, filename=str(path), name=name, domain=domain, version=version
    )
    typer.echo(
        f"catalog {catalog.name}: {catalog.rule_count} rules against ATT&CK "
        f"{catalog.domain} {catalog.attack_version}"
    )
