"""History commands: `kbmap history` (coverage over time, one line per change) and
`kbmap changes` (what changed since a point, with why)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import echo_json, engine, settings
from app.cli.coverage import Domain, Env, Json, Platforms, Tactics

if TYPE_CHECKING:
    from sqlmodel import Session

    from app.history.models import CoverageChanges, CoverageHistory, HistoryScope

Catalog = Annotated[
    str | None,
    typer.Option("--catalog", "-c", help="one catalog's history (deleted ones too)"),
]


def register(app: typer.Typer) -> None:
    app.command("history")(history)
    app.command("changes")(changes)


def _scope(
    session: Session,
    catalog: str | None,
    env: str | None,
    domain: str | None,
    tactic: list[str] | None,
    platform: list[str] | None,
) -> HistoryScope:
    from app.history import service as history_service

    return history_service.resolve_scope(
        session,
        catalog=catalog,
        environment=env,
        domain=domain,
        tactics=tactic,
        platforms=platform,
    )


def history(
    catalog: Catalog = None,
    env: Env = None,
    domain: Domain = None,
    tactic: Tactics = None,
    platform: Platforms = None,
    from_: Annotated[
        datetime | None, typer.Option("--from", help="first time kept (YYYY-MM-DD)")
    ] = None,
    to: Annotated[datetime | None, typer.Option(help="last time kept")] = None,
    json_out: Json = False,
) -> None:
    """Coverage over time: one line per recorded change (cause, actor, covered, effective)."""
    from sqlmodel import Session

    from app.history import service as history_service

    with Session(engine(settings())) as session:
        scope = _scope(session, catalog, env, domain, tactic, platform)
        result = history_service.coverage_history(session, scope=scope, start=from_, end=to)
    if json_out:
        echo_json(result)
    else:
        _print_history(result)


def changes(
    since: Annotated[
        str | None, typer.Option(help="a snapshot id, a date (YYYY-MM-DD) or an ISO time")
    ] = None,
    catalog: Catalog = None,
    env: Env = None,
    domain: Domain = None,
    tactic: Tactics = None,
    platform: Platforms = None,
    limit: Annotated[int, typer.Option(min=1, help="changes shown at most")] = 1000,
    json_out: Json = False,
) -> None:
    """Techniques gained and lost since a point, each with why (rule added, removed, disabled,
    remapped, technique revoked, telemetry removed, catalog deleted)."""
    from sqlmodel import Session

    from app.history import service as history_service

    with Session(engine(settings())) as session:
        scope = _scope(session, catalog, env, domain, tactic, platform)
        result = history_service.coverage_changes(session, scope=scope, since=since, limit=limit)
    if json_out:
        echo_json(result)
    else:
        _print_changes(result)


def _print_history(result: CoverageHistory) -> None:
    from rich.table import Table

    from app.cli.terminal import print_table, safe

    table = Table(
        "snapshot",
        "at (UTC)",
        "cause",
        "actor",
        "of",
        "covered",
        "effective",
        title=f"coverage history of {result.scope.scope}",
    )
    for p in result.points:
        c = p.cause
        table.add_row(
            str(c.snapshot),
            c.at.strftime("%Y-%m-%d %H:%M"),
            c.cause,
            safe(c.actor),
            safe(c.catalog or c.environment or c.release or ""),
            str(p.covered),
            "" if p.effective is None else str(p.effective),
        )
    print_table(table)


def _print_changes(result: CoverageChanges) -> None:
    from rich.table import Table

    from app.cli.terminal import print_table, safe

    since = f"since snapshot {result.since.snapshot}" if result.since else "since the beginning"
    table = Table(
        "at (UTC)",
        "technique",
        "change",
        "reason",
        title=f"{result.scope.scope} {since}: {result.gained} gained, "
        f"{result.lost} lost ({result.total} changes)",
    )
    for ch in result.items:
        table.add_row(
            ch.cause.at.strftime("%Y-%m-%d %H:%M"),
            f"{ch.technique} {safe(ch.name)}",
            ch.change,
            safe(ch.reason),
        )
    print_table(table)
