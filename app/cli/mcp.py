"""`kbmap mcp`: the MCP server on stdin/stdout, for an assistant that starts it (Claude Desktop
and other MCP clients). Read-only; the database is KBMAP_DATABASE_URL, as for every command.

Nothing may print to stdout but the protocol: the SDK's log lines go to stderr, and so does a
refusal to start (no database, a schema that is not current), as one `kbmap: …` line.
"""

from __future__ import annotations

import typer

from app.cli.common import engine, settings


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)


def mcp() -> None:
    """Serve kbmap's read questions to an assistant over MCP (stdio): technique pages, search,
    coverage, gaps, catalog comparison, what to collect next, rules, release diffs."""
    from app.mcp.server import build_server

    s = settings()
    build_server(engine(s), s, threads=False).run("stdio")
