"""ATT&CK commands: ingest, releases, technique, serve."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.audit import audited
from app.cli.common import echo_json, engine, progress, settings

if TYPE_CHECKING:
    from app.catalog.models import RuleRef

# What `ingest` parsed, never freed: the process exits without freeing it (see `_leave` in
# app.cli.main), which spares the 0.1 s that freeing a release's million objects costs.
_parsed: list[object] = []


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("releases")(releases)
    app.command("technique")(technique)
    app.command("serve")(serve)


@audited("ingest", "sources")
def ingest(
    sources: Annotated[
        list[str], typer.Argument(help="bundle files (.json/.json.gz), folders or URLs")
    ],
    version: Annotated[
        str | None, typer.Option(help="release version when the bundle does not say")
    ] = None,
    replace: Annotated[bool, typer.Option(help="reload a release that is already loaded")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print the outcome as JSON")] = False,
) -> None:
    """Load ATT&CK STIX bundles; all or nothing, one transaction for the whole call."""
    import gc

    from app.core.gc_pause import paused_gc

    with paused_gc():  # imports and the parse build many objects and no garbage cycles
        from app.attack.sources import BundleFeed

        s = settings()
        with BundleFeed(
            sources,
            limits=s.limits,
            timeout=s.download_timeout,
            retries=s.download_retries,
            deadline=s.download_deadline,
        ) as feed:
            # the database layer imports while the feed reads and gunzips on its worker thread
            from app.attack.ingest import ingest_sources

            with progress() as step:
                outcomes = ingest_sources(
                    engine(s, create=True),
                    feed,
                    limits=s.limits,
                    version=version,
                    replace=replace,
                    step=step,
                    keep=_parsed,
                )
        # The command ends soon (main's _leave skips the interpreter's teardown): what is alive
        # now, the bundles kept above among it, lives until then. Frozen, the first collection
        # after the pause does not walk all of it (0.07 s measured).
        gc.freeze()
    if json_out:
        echo_json(outcomes)
        return
    for o in outcomes:
        verb = {
            "unchanged": "already loaded, nothing to do",
            "loaded": "loaded",
            "replaced": "replaced",
        }[o.status]
        typer.echo(
            f"{o.domain} {o.version}: {verb} ({o.objects} objects, {o.relationships} "
            f"relationships, {o.techniques} active techniques) from {o.source}"
        )


def releases(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List loaded releases; the default of each domain is marked."""
    from sqlmodel import Session

    from app.attack import service as attack_service

    with Session(engine()) as session:
        rows = attack_service.list_releases(session)
    if json_out:
        echo_json(rows)
        return
    from rich.table import Table

    from app.cli.terminal import print_table

    table = Table(
        "domain", "version", "STIX", "detection model", "techniques", "objects", "default"
    )
    for r in rows:
        table.add_row(
            r.domain,
            r.version,
            r.stix_version,
            r.detection_model,
            str(r.technique_count),
            str(r.object_count),
            "yes" if r.is_default else "",
        )
    print_table(table)


def technique(
    attack_id: Annotated[str, typer.Argument(help="technique id, e.g. T1550.001")],
    domain: Annotated[str | None, typer.Option(help="enterprise, mobile or ics")] = None,
    version: Annotated[str | None, typer.Option(help="ATT&CK release, e.g. 17.1")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
    env: Annotated[
        str | None, typer.Option("--env", help="environment: can each rule fire there (JSON)")
    ] = None,
) -> None:
    """Print one technique's page: tactics, detection, mitigations, groups, rules."""
    from sqlmodel import Session

    from app.attack import service as attack_service
    from app.cli.terminal import print_technique
    from app.technique_page import service as page_service

    with Session(engine()) as session:
        releases = attack_service.releases_for_lookup(session, domain=domain, version=version)
        page = page_service.get_technique_page(
            session, releases=releases, attack_id=attack_id, environment=env, settings=settings()
        )
    if json_out:
        echo_json(page)
    else:
        print_technique(page)
        if env:
            _print_firing(page.rules + page.subtechnique_rules, env)


def _print_firing(rules: list[RuleRef], env: str) -> None:
    """Per rule, whether it can fire in `env` (the page printer knows no environment)."""
    typer.echo(f"\nIn environment {env}:")
    for r in rules:
        said = f"fires on {', '.join(r.systems or [])}" if r.fires else f"cannot fire: {r.why_not}"
        typer.echo(f"  {r.catalog}/{r.rule_id} ({r.technique}): {said}")


def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (default KBMAP_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default KBMAP_PORT)")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 1,
) -> None:
    """Start the API; load ATT&CK from KBMAP_ATTACK_SOURCE first if no release is loaded."""
    import os

    import uvicorn

    from app.core.config import get_settings
    from app.refresh.startup import ensure_attack_loaded

    if host:  # the app (and each worker) reads its settings, so the bind address goes there
        os.environ["KBMAP_HOST"] = host
        get_settings.cache_clear()
    s = settings()
    with progress() as step:
        loaded = ensure_attack_loaded(engine(s, create=True), s, step=step)
    for line in loaded:
        typer.echo(line, err=True)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host or s.host,
        port=port or s.port,
        workers=workers,
        log_level="info",
    )
