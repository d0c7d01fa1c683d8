"""The `kbmap` command: a Typer root with one sub-module per domain.

Heavy imports (FastAPI, the services) happen inside commands so `kbmap ingest` starts fast.
Any KbmapError becomes one line on stderr, `kbmap: <message>`, and a non-zero exit.
"""

from __future__ import annotations

import sys

import typer

from app.cli import attack as attack_cli
from app.cli import catalog as catalog_cli
from app.cli import coverage as coverage_cli
from app.cli import diff as diff_cli
from app.cli import layer as layer_cli
from app.cli import refresh as refresh_cli
from app.cli import token as token_cli
from app.core.errors import KbmapError

app = typer.Typer(
    name="kbmap",
    help="ATT&CK knowledge-base mapper: techniques, rule catalogs, coverage and gaps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
attack_cli.register(app)
app.add_typer(catalog_cli.app, name="catalog")
coverage_cli.register(app)
diff_cli.register(app)
layer_cli.register(app)
refresh_cli.register(app)
token_cli.register(app)


def main() -> None:
    try:
        app(standalone_mode=False)
    except KbmapError as exc:
        typer.echo(f"kbmap: {exc}", err=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("kbmap: aborted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            typer.echo(f"kbmap: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
