"""The `kbmap` command: a Typer root with one sub-module per domain.

Heavy imports (FastAPI, SQLAlchemy, the services) happen inside commands so `kbmap ingest` starts
fast. Any KbmapError becomes one line on stderr, `kbmap: <message>`, and a non-zero exit.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import TYPE_CHECKING, Annotated, NoReturn

# kbmap uses no pydantic plugins, and looking for them reads every installed package's entry
# points the first time a model is built: 60-95 ms of each command here (measured). A value
# already in the environment wins (an empty one loads them all).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import typer
from typer.main import get_command, get_command_name

from app.cli import attack as attack_cli
from app.cli import catalog as catalog_cli
from app.cli import check as check_cli
from app.cli import coverage as coverage_cli
from app.cli import diff as diff_cli
from app.cli import environment as environment_cli
from app.cli import history as history_cli
from app.cli import layer as layer_cli
from app.cli import mcp as mcp_cli
from app.cli import refresh as refresh_cli
from app.cli import token as token_cli
from app.cli.common import dispose_engines
from app.cli.plain_help import plain_help
from app.core.errors import KbmapError

if TYPE_CHECKING:
    from typer._click import Command  # what typer.main.get_command returns


def _typer() -> typer.Typer:
    return typer.Typer(
        name="kbmap",
        help="ATT&CK knowledge-base mapper: techniques, rule catalogs, coverage and gaps.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


app = _typer()


def _print_version(value: bool) -> None:
    """`kbmap --version`: the installed package's version, from its metadata, then exit 0."""
    if value:
        from importlib.metadata import version

        typer.echo(f"kbmap {version('kbmap')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Keeps `kbmap` a group of commands even when it is built with one (see _for_command)."""


attack_cli.register(app)
app.add_typer(catalog_cli.app, name="catalog")
check_cli.register(app)
coverage_cli.register(app)
diff_cli.register(app)
environment_cli.register(app)
history_cli.register(app)
layer_cli.register(app)
mcp_cli.register(app)
refresh_cli.register(app)
token_cli.register(app)


def main() -> NoReturn:
    _leave(_run())


def _for_command(argv: list[str]) -> typer.Typer:
    """The app with only the command or group that `argv` names, when it names one: Typer builds
    the click command of every registered command on each run (0.07 s for all of kbmap's,
    measured), and a run needs its own. `kbmap`, `kbmap --help` and unknown names get them all."""
    name = argv[0] if argv else ""
    commands = [
        c
        for c in app.registered_commands
        if c.callback and get_command_name(c.name or c.callback.__name__) == name
    ]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    narrow = _typer()
    narrow.registered_callback = app.registered_callback
    narrow.registered_commands, narrow.registered_groups = commands, groups
    return narrow


def command_for(argv: list[str]) -> Command:
    """The click command a run executes, with help that shows no Python types (plain_help)."""
    command = get_command(_for_command(argv))
    plain_help(command)
    return command


def _run() -> int:
    try:
        # not standalone, click returns a command's typer.Exit code instead of raising it
        code = command_for(sys.argv[1:2])(standalone_mode=False)
    except KbmapError as exc:
        from app.cli.terminal import safe  # a message may quote a hostile file name

        typer.echo(f"kbmap: {safe(exc, markup=False)}", err=True)
        return 1
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("kbmap: aborted", err=True)
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:  # usage: unknown command or option, missing argument
        # Typer carries its own click (typer._click), whose errors are TyperExceptions
        format_message = getattr(exc, "format_message", None)
        typer.echo(f"kbmap: {format_message() if format_message else exc}", err=True)
        return int(getattr(exc, "exit_code", 2))
    except Exception as exc:  # a database down or a disk full mid-command: one line too
        from app.core.db import database_error

        known = database_error(exc)
        if known is None:
            raise
        typer.echo(f"kbmap: {known}", err=True)
        return 1
    return code if type(code) is int else 0


def _leave(code: int) -> NoReturn:
    """Exit without the interpreter's teardown, which frees every imported module's objects one
    by one: about 0.2 s (measured) after a command whose work is done. Output is flushed and the
    atexit handlers (logging among them) run first, and the command's databases are closed."""
    dispose_engines()
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)  # the speed trick: no teardown, so nothing after this line runs


if __name__ == "__main__":
    main()
