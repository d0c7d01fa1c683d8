"""Catalog commands: import, list, show, export, delete."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.catalog.export import EXPORTS  # light: the export formats, no renderer loaded
from app.catalog.registry import BUILTINS  # light: names the built-ins, imports none
from app.cli.audit import audited
from app.cli.common import echo_json, engine, progress, settings

if TYPE_CHECKING:
    from app.catalog.service import ImportResult

app = typer.Typer(
    help="Vendor rule catalogs: import, list, show, export, delete.", no_args_is_help=True
)


@app.command("import")
@audited("catalog import", "name", "path")
def import_(
    path: Annotated[
        str,
        typer.Argument(help="catalog file, folder of rules, .tar.gz, or a shipped catalog's name"),
    ],
    format: Annotated[
        str,
        typer.Option("--format", "-f", help=", ".join(["auto", *BUILTINS])),
    ] = "auto",
    name: Annotated[
        str | None, typer.Option(help="catalog name (default: from the catalog or file name)")
    ] = None,
    domain: Annotated[str | None, typer.Option(help="validate against this ATT&CK domain")] = None,
    version: Annotated[
        str | None, typer.Option(help="validate against this ATT&CK release")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Import a catalog (all or nothing); a catalog of the same name is replaced atomically."""
    import gc

    from app.core.gc_pause import paused_gc

    with paused_gc():  # imports, the parse and the rows build many objects and few cycles
        result = _import(path, format, name, domain, version)
        # alive until the command's fast exit: frozen, no collection walks it again (the
        # collector took 0.4 s of this command, measured)
        gc.freeze()
    if json_out:
        echo_json(result.catalog)
        return
    from app.cli.terminal import print_import_report

    print_import_report(result.catalog, replaced=result.replaced)


def _import(
    path: str, format_id: str, name: str | None, domain: str | None, version: str | None
) -> ImportResult:
    from app.catalog import registry
    from app.catalog.source import open_source

    s = settings()
    with progress() as step:
        if step:
            step(f"reading {path}")
        source = open_source(_shipped_or_path(path, s.kb_dir), s.limits)
        if step:
            step("parsing and validating")
        # a large parse starts on the second core before the database layers load
        started = registry.start_parse(source, format_id=format_id, limits=s.limits)
        from app.catalog import service as catalog_service

        return catalog_service.import_catalog(
            engine(s, create=True),
            s,
            source=source,
            format_id=format_id,
            name=name,
            domain=domain,
            version=version,
            started=started,
        )


def _shipped_or_path(path: str, kb_dir: Path) -> str | Path:
    """A path as given; a bare name that is no file names a catalog kbmap ships (kb/catalogs)."""
    shipped = kb_dir / "catalogs" / f"{path}.yaml"
    if Path(path).exists() or "/" in path:
        return path
    if shipped.is_file():
        return shipped
    from app.core.errors import Location, NotFound

    names = ", ".join(sorted(f.stem for f in (kb_dir / "catalogs").glob("*.yaml")))
    raise NotFound(f"no such file or folder (catalogs kbmap ships: {names})", Location(file=path))


@app.command("list")
def list_(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Loaded catalogs with their rule counts and the release they were validated against."""
    from sqlmodel import Session

    from app.catalog import service as catalog_service

    with Session(engine()) as session:
        rows = catalog_service.list_catalogs(session)
    if json_out:
        echo_json(rows)
        return
    from rich.table import Table

    from app.cli.terminal import print_table

    table = Table("name", "format", "rules", "naming a technique", "validated against", "imported")
    for c in rows:
        table.add_row(
            c.name,
            c.format_id,
            str(c.rule_count),
            str(c.report.rules_with_technique),
            f"{c.domain} {c.attack_version}",
            c.imported_at.strftime("%Y-%m-%d %H:%M"),
        )
    print_table(table, whole=("name", "format"))


@app.command("show")
def show(name: str, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One catalog's import report: outcomes per mapping with examples."""
    from sqlmodel import Session

    from app.catalog import service as catalog_service
    from app.cli.terminal import print_import_report

    with Session(engine()) as session:
        c = catalog_service.get_catalog(session, name=name)
    if json_out:
        echo_json(c)
    else:
        print_import_report(c, replaced=False)


@app.command("export")
def export(
    name: str,
    format: Annotated[str, typer.Option("--format", "-f", help=", ".join(EXPORTS))] = "yaml",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="file (default: stdout)")
    ] = None,
) -> None:
    """Write a catalog in kbmap's canonical format (YAML, CSV, JSON) or as a STIX 2.1 bundle."""
    from sqlmodel import Session

    from app.catalog import service as catalog_service

    with Session(engine()) as session:
        content, _media, _filename = catalog_service.export_catalog(session, name=name, fmt=format)
    if output:
        output.write_bytes(content)
    else:
        typer.echo(content.decode(), nl=False)


@app.command("delete")
@audited("catalog delete", "name")
def delete(name: str) -> None:
    """Remove a catalog and its rules."""
    from app.catalog import service as catalog_service

    catalog_service.delete_catalog(engine(), name=name)
    typer.echo(f"deleted catalog {name}")


@app.command("upgrade")
@audited("catalog upgrade", "name")
def upgrade(
    name: str,
    to: Annotated[str, typer.Option("--to", help="target ATT&CK release, e.g. 18.1")],
    domain: Annotated[str | None, typer.Option(help="default: the catalog's domain")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rewrite a catalog's mappings to another release; the old ids stay as provenance."""
    from app.catalog.upgrade import upgrade_catalog
    from app.cli.diff import print_upgrade_report

    s = settings()
    report = upgrade_catalog(engine(s), s, name=name, domain=domain, version=to)
    if json_out:
        echo_json(report)
    else:
        print_upgrade_report(report)
