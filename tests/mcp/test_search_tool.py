"""The MCP `search` tool answers like GET /api/v1/search (same hits, same order), and refuses
what the API refuses, as tool errors naming the field or listing the known kinds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mcp import Client
from mcp.server.mcpserver import MCPServer

from app.core.config import Settings
from app.core.db import make_engine
from app.mcp.server import build_server
from tests.mcp.conftest import API, answer, error_text, run


@pytest.fixture(scope="module")
def server(api_client: TestClient, module_settings: Settings) -> Iterator[MCPServer]:
    engine = make_engine(module_settings.database_url)
    yield build_server(engine, module_settings)
    engine.dispose()


def _call(server: MCPServer, args: dict[str, Any]) -> Any:
    async def session(client: Client) -> Any:
        return await client.call_tool("search", args)

    return run(session, server)


@pytest.mark.parametrize(
    ("query", "extra"),
    [
        ("T1550.001", {}),
        ("APT29", {}),
        ("Cozy Bear", {"kinds": ["group", "software"]}),
        ("access token", {"limit": 3}),
        ("powershell", {"kinds": ["rule"], "limit": 4, "offset": 4}),
        ("PT-CR-956", {"kinds": ["rule"]}),
        ("DET0185", {"version": "18.1"}),
    ],
)
def test_the_tool_answers_like_the_api(
    server: MCPServer, api_client: TestClient, query: str, extra: dict[str, Any]
) -> None:
    params = {"q": query, "limit": extra.get("limit", 10), "kind": extra.get("kinds")}
    params |= {k: extra[k] for k in ("version", "offset") if k in extra}
    r = api_client.get(f"{API}/search", params={k: v for k, v in params.items() if v})
    assert r.status_code == 200, r.text
    api = r.json()
    tool = answer(_call(server, {"query": query, **extra}))
    assert (tool["domain"], tool["version"], tool["total"]) == (
        api["domain"],
        api["version"],
        api["total"],
    )
    assert [(g["kind"], g["total"]) for g in tool["groups"]] == [
        (g["kind"], g["total"]) for g in api["groups"]
    ]
    for mine, theirs in zip(tool["groups"], api["groups"], strict=True):
        assert [(h["id"], h.get("catalog"), h["score"]) for h in mine["hits"]] == [
            (h["id"], h["catalog"], h["score"]) for h in theirs["hits"]
        ]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "x" * 201}, "query"),
        ({"query": "\x00T1059"}, "query"),
        ({"query": "x", "limit": 51}, "limit"),
        ({"query": "x", "kinds": [f"k{i}" for i in range(21)]}, "kinds"),
    ],
)
def test_bad_arguments_are_tool_errors(server: MCPServer, args: dict[str, Any], field: str) -> None:
    text = error_text(_call(server, args))
    assert text.startswith("Error executing tool search:") and f"\n{field}" in text


def test_an_unknown_kind_lists_the_known(server: MCPServer) -> None:
    text = error_text(_call(server, {"query": "x", "kinds": ["spaceship"]}))
    assert "spaceship" in text and "known: technique" in text and "rule" in text
