"""`kbmap refresh`: fetch new ATT&CK releases from MITRE's index; made for cron.

Exit 0 when something was fetched or nothing is new, non-zero (one `kbmap:` line on stderr, from
the Typer root) on any failure, and a one-line summary on stdout so a cron mail says what changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.audit import audited
from app.cli.common import echo_json, engine, progress, settings


def register(app: typer.Typer) -> None:
    app.command("refresh")(refresh)


@audited("refresh", "version", "domain")
def refresh(
    index_url: Annotated[
        str | None,
        typer.Option(
            help="collection index URL (default: KBMAP_ATTACK_SOURCE when it names an "
            "index.json; a bundle URL there is fetched as given; else MITRE's)"
        ),
    ] = None,
    index_file: Annotated[
        Path | None, typer.Option(help="read the collection index from a local file")
    ] = None,
    domain: Annotated[
        list[str] | None,
        typer.Option(
            "--domain", help="enterprise, mobile or ics; repeat for several (default all)"
        ),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="fetch this release (e.g. 18.1) instead of the newest")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="list what would be fetched; change nothing")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Fetch, verify and load ATT&CK releases not loaded yet; all or nothing."""
    from app.refresh import service as refresh_service

    s = settings()
    with progress() as step:
        report = refresh_service.refresh(
            engine(s, create=True),
            s,
            index_url=index_url,
            index_file=index_file,
            domains=domain,
            version=version,
            dry_run=dry_run,
            step=step,
        )
    if json_out:
        echo_json(report.as_dict())
    else:
        typer.echo(report.summary)
