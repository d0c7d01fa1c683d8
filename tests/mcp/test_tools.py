"""The tools in process (the SDK's in-memory client on `build_server`): bounds on every input,
hostile strings, unknown values, the rule pages of a technique, and the Markdown resource."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from app.core.config import Settings
from app.core.db import make_engine
from app.mcp.server import build_server
from tests.mcp.conftest import API, ENVIRONMENT, answer, error_text, markdown, run


@pytest.fixture(scope="module")
def server(api_client: TestClient, module_settings: Settings) -> Iterator[MCPServer]:
    engine = make_engine(module_settings.database_url)
    yield build_server(engine, module_settings)
    engine.dispose()


def _calls(server: MCPServer, *calls: tuple[str, dict[str, Any]]) -> list[Any]:
    async def session(client: Client) -> list[Any]:
        return [await client.call_tool(name, args) for name, args in calls]

    return run(session, server)


@pytest.mark.parametrize(
    ("tool", "args", "field"),
    [
        ("search_techniques", {"limit": 10000}, "limit"),
        ("search_techniques", {"limit": 0}, "limit"),
        ("search_rules", {"offset": -1}, "offset"),
        ("search_rules", {"query": "x" * 1_000_000}, "query"),
        ("technique_page", {"attack_id": "T1059/../../etc"}, "attack_id"),
        ("technique_page", {"attack_id": "T" * 41}, "attack_id"),
        ("coverage_summary", {"version": "18.1; drop table rule"}, "version"),
        ("coverage_summary", {"catalogs": [f"c{i}" for i in range(21)]}, "catalogs"),
        ("gaps", {"environment": "../etc/passwd"}, "environment"),
        ("gaps", {"min_score": 101}, "min_score"),
        ("compare_catalogs", {"a": [], "b": ["sigma"]}, "a"),
        ("rule", {"catalog": "sigma", "rule_id": "r" * 301}, "rule_id"),
        ("collect_next", {}, "environment"),
        ("release_diff", {"from_version": "17", "to_version": "18.1"}, "from_version"),
        ("search_techniques", {"query": {"nested": [[[[["deep"]]]]]}}, "query"),
        ("search_techniques", {"query": "\x00zzzz"}, "query"),
        ("search_rules", {"query": "\x1b[31m\r\n"}, "query"),
    ],
)
def test_out_of_bounds_inputs_are_tool_errors_naming_the_field(
    server: MCPServer, tool: str, args: dict[str, Any], field: str
) -> None:
    (result,) = _calls(server, (tool, args))
    text = error_text(result)
    assert text.startswith(f"Error executing tool {tool}:") and f"\n{field}" in text
    assert len(text) < 2000  # the huge value is not echoed back whole


def test_unknown_values_list_the_known(server: MCPServer) -> None:
    results = _calls(
        server,
        ("coverage_summary", {"catalogs": ["sigma", "nope"]}),
        ("technique_page", {"attack_id": "T1059.001", "environment": "nowhere"}),
        ("gaps", {"platforms": ["Amiga"]}),
        ("search_techniques", {"domain": "marine"}),
        ("technique_page", {"attack_id": "T0000"}),
        ("release_diff", {"from_version": "9.0", "to_version": "18.1"}),
        ("coverage_summary", {"version": "9.9"}),
    )
    texts = [error_text(r) for r in results]
    assert "known: maxpatrol-siem, open-xp-rules, sigma, sigma-attack18" in texts[0]
    assert f"known: {ENVIRONMENT}" in texts[1]
    assert "Windows" in texts[2] and "Amiga" in texts[2]
    assert "enterprise" in texts[3] and "marine" in texts[3]
    assert "T0000" in texts[4]
    assert "9.0" in texts[5]
    assert "9.9" in texts[6] and "enterprise 18.1" in texts[6]  # the loaded releases named


TEXT_SEARCHES = (("search_techniques", "/techniques"), ("search_rules", "/rules"))
HOSTILE = ("' OR 1=1 --", "ﾟ\u202e\ufeff\\", "%", "_", "a%b_c\\")


def test_hostile_strings_get_the_apis_answers(server: MCPServer, api_client: TestClient) -> None:
    """Same totals as the API for the same text: quotes, bidi and BOM characters, LIKE's own
    wildcards matched literally."""
    asked = [(tool, path, q) for tool, path in TEXT_SEARCHES for q in HOSTILE]
    results = _calls(
        server,
        *[(tool, {"query": q}) for tool, _, q in asked],
        ("search_techniques", {"query": "\ud800"}),
    )
    for (_, path, q), result in zip(asked, results, strict=False):
        api = api_client.get(f"{API}{path}", params={"q": q, "limit": 1}).json()
        assert "total" in api, (path, q, api)
        assert answer(result)["total"] == api["total"], (path, q)
    lone = results[-1]  # a lone surrogate: no text the database can hold, not a crash
    assert "Error executing tool search_techniques" in error_text(lone) or answer(lone)


def test_rule_pages_walk_every_rule_of_the_technique_once(
    server: MCPServer, api_client: TestClient
) -> None:
    api = api_client.get(f"{API}/techniques/T1059.001").json()
    expected = sorted((r["catalog"], r["rule_id"]) for r in api["rules"])
    seen: list[tuple[str, str]] = []

    async def walk(client: Client) -> None:
        offset: int | None = 0
        while offset is not None:
            args = {"attack_id": "T1059.001", "rules_offset": offset}
            text = markdown(await client.call_tool("technique_page", args))
            assert len(text.encode()) <= 8192
            for line in text.splitlines():
                if line.startswith("- "):
                    catalog, rest = line[2:].split(": ", 1)
                    seen.append((catalog, rest.split(": ", 1)[0]))
            more = [x for x in text.splitlines() if "more rules: rules_offset=" in x]
            offset = int(more[0].rsplit("=", 1)[1]) if more else None

    run(walk, server)
    assert seen == expected and len(expected) > 200


def test_environment_says_whether_each_rule_fires(server: MCPServer) -> None:
    (result,) = _calls(
        server, ("technique_page", {"attack_id": "T1059.001", "environment": ENVIRONMENT})
    )
    rules = [x for x in markdown(result).splitlines() if x.startswith("- ")]
    assert rules and all(" · fires" in x or " · cannot fire: " in x for x in rules)


def test_the_technique_page_resource_is_the_tools_markdown(server: MCPServer) -> None:
    async def session(client: Client) -> list[Any]:
        templates = (await client.list_resource_templates()).resource_templates
        latest = await client.read_resource("kbmap://techniques/T1059.001")
        older = await client.read_resource("kbmap://techniques/enterprise/17.1/T1059.001")
        tool = await client.call_tool("technique_page", {"attack_id": "T1059.001"})
        errors = []
        for uri in ("kbmap://techniques/T0000", "kbmap://techniques/enterprise/9.9/T1059"):
            with pytest.raises(MCPError) as caught:
                await client.read_resource(uri)
            errors.append(str(caught.value))
        return [templates, latest, older, tool, errors]

    templates, latest, older, tool, errors = run(session, server)
    assert {t.uri_template for t in templates} == {
        "kbmap://techniques/{attack_id}",
        "kbmap://techniques/{domain}/{version}/{attack_id}",
    }
    assert latest.contents[0].mime_type == "text/markdown"
    assert latest.contents[0].text == markdown(tool)
    assert "ATT&CK enterprise 17.1" in older.contents[0].text
    assert "T0000" in errors[0] and "9.9" in errors[1]


def test_a_long_rule_body_is_cut_and_says_how_much_is_left(
    server: MCPServer, api_client: TestClient
) -> None:
    body = "selection: " + "x" * 5000
    doc = {"name": "long-body", "rules": [{"id": "L-1", "techniques": ["T1059"], "body": body}]}
    r = api_client.post("/api/v1/catalogs", files={"file": ("long.json", json.dumps(doc))})
    assert r.status_code == 201, r.text
    try:
        assert api_client.get("/api/v1/rules/long-body/L-1").json()["body"] == body
        (result,) = _calls(server, ("rule", {"catalog": "long-body", "rule_id": "L-1"}))
        got = answer(result)["body"]
        assert got == body[:3000] + f"… ({len(body) - 3000} more characters)"
    finally:
        assert api_client.delete("/api/v1/catalogs/long-body").status_code == 204
