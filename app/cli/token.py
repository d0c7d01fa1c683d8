"""Token commands (create, list, revoke) and `kbmap audit`.

The CLI works on the database directly, so whoever can run it here is trusted: this is how the
first admin token is made. `token create` writes only the token to stdout (one line), everything
else to stderr, so `TOKEN=$(kbmap token create ...)` captures exactly the token.
"""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.audit import audited
from app.cli.common import echo_json, engine, settings

token_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
    app.command("audit")(audit)


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else ""


@token_app.command("create")
@audited("token create", "name")
def create(
    name: Annotated[str, typer.Option(help="unique name; it is the actor in the audit log")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help="read (default), write or admin; admin implies write, write implies read"
        ),
    ] = None,
    expires_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="expire after N days (default: never)")
    ] = None,
) -> None:
    """Make a token and print it once; only its hash is stored."""
    from app.auth import service as auth_service

    s = settings()
    read, token = auth_service.create_token(
        engine(s, create=True), s, name=name, scopes=scope or ["read"], expires_in_days=expires_days
    )
    expires = _when(read.expires_at) or "never"
    typer.echo(
        f"created token {read.name} (scopes: {', '.join(read.scopes)}; expires: {expires}); "
        "it is shown once, store it now:",
        err=True,
    )
    typer.echo(token)


@token_app.command("list")
def list_(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every token with its scopes, status and last use (never the secret)."""
    from sqlmodel import Session

    from app.auth import service as auth_service

    with Session(engine()) as session:
        rows = auth_service.list_tokens(session)
    if json_out:
        echo_json(rows)
        return
    from rich.table import Table

    from app.cli.terminal import print_table

    table = Table("name", "prefix", "scopes", "status", "created", "expires", "last used")
    for t in rows:
        table.add_row(
            t.name,
            t.prefix,
            ", ".join(t.scopes),
            t.status,
            _when(t.created_at),
            _when(t.expires_at),
            _when(t.last_used_at),
        )
    print_table(table, whole=("name", "prefix"))


@token_app.command("revoke")
@audited("token revoke", "name")
def revoke(name: Annotated[str, typer.Argument(help="the token's name")]) -> None:
    """Revoke a token at once; it stays listed as revoked."""
    from app.auth import service as auth_service

    auth_service.revoke_token(engine(), name=name)
    typer.echo(f"revoked token {name}")


def audit(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    actor: Annotated[str | None, typer.Option(help="token name or cli:<user>")] = None,
    outcome: Annotated[str | None, typer.Option(help="ok, denied or error")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The audit log, newest first: who changed what, and how it ended."""
    from sqlmodel import Session

    from app.auth import service as auth_service

    with Session(engine()) as session:
        page = auth_service.list_events(
            session, limit=limit, offset=offset, actor=actor, outcome=outcome
        )
    if json_out:
        echo_json(page)
        return
    from rich.table import Table

    from app.cli.terminal import print_table, safe

    table = Table("at", "actor", "action", "target", "outcome", title=f"{page.total} events")
    for e in page.items:
        at = e.at.strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(at, safe(e.actor), safe(e.action), safe(e.target), safe(e.outcome))
    print_table(table, whole=("actor", "action", "outcome"))
