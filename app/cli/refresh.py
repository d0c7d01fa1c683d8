"""`kbmap refresh`: fetch new ATT&CK releases from MITRE's index or a TAXII 2.1 server; for cron.

Exit 0 when something was fetched or nothing is new, non-zero (one `kbmap:` line on stderr, from
the Typer root) on any failure, and a one-line summary on stdout so a cron mail says what changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.audit import audited
from app.cli.common import echo_json, engine, progress, settings
from app.core.errors import InvalidInput

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.core.progress import Step
    from app.refresh.service import RefreshReport


def register(app: typer.Typer) -> None:
    app.command("refresh")(refresh)


@audited("refresh", "taxii", "version", "domain")
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
    taxii: Annotated[
        str | None,
        typer.Option(
            help="a TAXII 2.1 API root or discovery URL instead of the index (MITRE's API "
            "root: https + attack-taxii.mitre.org/api/v21/)"
        ),
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="with --taxii: the collection id (default: by --domain)")
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(help="with --taxii: basic-auth user; the password is KBMAP_TAXII_PASSWORD"),
    ] = None,
) -> None:
    """Fetch, verify and load ATT&CK releases not loaded yet; all or nothing."""
    s = settings()
    if taxii is None and (collection or user):
        raise InvalidInput("--collection and --user go with --taxii")
    if taxii is not None and (index_url or index_file or version):
        raise InvalidInput(
            "--taxii loads the release each collection holds: no --index-url, --index-file "
            "or --version with it"
        )
    with progress() as step:
        if taxii is not None:
            report = _from_taxii(s, taxii, collection, domain, user, dry_run=dry_run, step=step)
        else:
            from app.refresh import service as refresh_service

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


def _from_taxii(
    s: Settings,
    url: str,
    collection: str | None,
    domains: list[str] | None,
    user: str | None,
    *,
    dry_run: bool,
    step: Step | None,
) -> RefreshReport:
    """`--taxii`: the collections of a TAXII 2.1 server instead of MITRE's index."""
    from app.refresh import taxii as taxii_refresh

    return taxii_refresh.refresh_taxii(
        engine(s, create=True),
        s,
        url=url,
        collection=collection,
        domains=domains,
        user=user,
        dry_run=dry_run,
        step=step,
    )
