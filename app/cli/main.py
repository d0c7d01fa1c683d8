"""The `kbmap` command: a Typer root with one sub-module per domain.

Heavy imports (FastAPI, SQLAlchemy, the services) happen inside commands so `kbmap ingest` starts
fast. Any KbmapError becomes one line on stderr, `kbmap: <message>`, and a non-zero exit.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn

import typer

from app.cli import attack as attack_cli
from app.cli import catalog as catalog_cli
from app.cli import coverage as coverage_cli
from app.cli import diff as diff_cli
from app.cli import layer as layer_cli
from app.cli import refresh as refresh_cli
from app.cli import token as token_cli
from app.cli.common import dispose_engines
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


def main() -> NoReturn:
    _leave(_run())


def _run() -> int:
    try:
        app(standalone_mode=False)
    except KbmapError as exc:
        typer.echo(f"kbmap: {exc}", err=True)
        return 1
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("kbmap: aborted", err=True)
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            typer.echo(f"kbmap: {exc.format_message()}", err=True)
            return int(exc.exit_code)
        raise
    return 0


def _leave(code: int) -> NoReturn:
    """Exit without the interpreter's teardown, which frees every imported module's objects one
    by one: about 0.2 s (measured) after a command whose work is done. Output is flushed and the
    atexit handlers (logging among them) run first, and the command's databases are closed."""
    dispose_engines()
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    main()
