"""Fetch new ATT&CK releases from MITRE's index: the same command as `kbmap refresh`.

For cron on a machine where the package is not installed: run it from a checkout
(`python scripts/refresh_stix.py --json`). Options, output and exit codes are `kbmap refresh`'s.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click
import typer

from app.cli import refresh as refresh_cli
from app.core.errors import KbmapError


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    refresh_cli.register(app)  # one command: options go straight to it
    try:
        app(standalone_mode=False)
    except KbmapError as exc:
        print(f"kbmap: {exc}", file=sys.stderr)
        sys.exit(1)
    except (click.Abort, KeyboardInterrupt):
        print("kbmap: aborted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors
        print(f"kbmap: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
