"""`kbmap mcp` as an assistant runs it: a process on stdin/stdout, driven by the SDK's stdio
client. Every tool answers the question the API answers, with the same numbers; a bad value is a
tool error naming what is known, and the server goes on answering."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mcp import Client

from app.core.config import Settings
from tests.mcp.conftest import (
    API,
    ENVIRONMENT,
    answer,
    db_path,
    error_text,
    markdown,
    run,
    stdio_server,
)

pytestmark = pytest.mark.integration  # a kbmap process or a uvicorn server

TOOLS = {
    "technique_page",
    "search",
    "search_techniques",
    "search_rules",
    "rule",
    "coverage_summary",
    "gaps",
    "compare_catalogs",
    "collect_next",
    "release_diff",
}


def _api(client: TestClient, path: str, **params: Any) -> Any:
    r = client.get(f"{API}{path}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _no_nulls(value: Any) -> Any:
    """The API's answer as the tools write it: keys whose value is null left out."""
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value]
    return value


def _most_mapped_technique(database_url: str) -> tuple[str, int]:
    """The technique with the most rules mapped exactly to it, read with plain SQL."""
    with sqlite3.connect(db_path(database_url)) as db:
        row = db.execute(
            "SELECT technique, count(DISTINCT rule_pk) AS n FROM rule_technique "
            "WHERE technique IS NOT NULL GROUP BY technique ORDER BY n DESC LIMIT 1"
        ).fetchone()
    return str(row[0]), int(row[1])


@pytest.fixture(scope="module")
def stdio_answers(api_client: TestClient, module_settings: Settings) -> dict[str, Any]:
    """One `kbmap mcp` session asking every tool a question (and a few bad ones)."""
    biggest, _ = _most_mapped_technique(module_settings.database_url)
    rule_id = _api(api_client, "/rules", catalog="sigma", q="powershell", limit=1)["items"][0][
        "rule_id"
    ]
    calls: dict[str, tuple[str, dict[str, Any]]] = {
        "page": ("technique_page", {"attack_id": "T1059.001"}),
        "biggest": ("technique_page", {"attack_id": biggest}),
        "techniques": ("search_techniques", {"query": "powershell"}),
        "rules": ("search_rules", {"query": "powershell", "catalogs": ["sigma"], "limit": 5}),
        "rule": ("rule", {"catalog": "sigma", "rule_id": rule_id}),
        "summary": ("coverage_summary", {"catalogs": ["sigma"], "tactics": ["TA0002"]}),
        "effective": ("coverage_summary", {"environment": ENVIRONMENT}),
        "gaps": ("gaps", {"catalogs": ["sigma"], "limit": 5, "offset": 3}),
        "compare": ("compare_catalogs", {"a": ["sigma"], "b": ["open-xp-rules"]}),
        "next": (
            "collect_next",
            {"environment": ENVIRONMENT, "catalogs": ["sigma-attack18"], "limit": 5},
        ),
        "diff": ("release_diff", {"from_version": "17.1", "to_version": "18.1", "limit": 3}),
        "bad_catalog": ("coverage_summary", {"catalogs": ["nope"]}),
        "bad_environment": ("gaps", {"environment": "nowhere"}),
        "bad_tactic": ("gaps", {"tactics": ["not-a-tactic"]}),
        "bad_limit": ("search_techniques", {"limit": 10000}),
        "bad_rule": ("rule", {"catalog": "sigma", "rule_id": "no-such-rule"}),
    }

    async def session(client: Client) -> dict[str, Any]:
        found: dict[str, Any] = {"tools": (await client.list_tools()).tools}
        for key, (name, args) in calls.items():
            found[key] = await client.call_tool(name, args)
        return found

    found = run(session, stdio_server(module_settings.database_url))
    return found | {"client": api_client, "rule_id": rule_id}


def test_tools_are_listed_read_only_with_bounded_inputs(stdio_answers: dict[str, Any]) -> None:
    tools = {t.name: t for t in stdio_answers["tools"]}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and tool.annotations.read_only_hint is True
        props = tool.input_schema["properties"]
        if "limit" in props:
            assert (props["limit"]["maximum"], props["limit"]["default"]) == (50, 10)
    assert tools["technique_page"].input_schema["properties"]["attack_id"]["maxLength"] == 40


def test_technique_page_has_the_apis_numbers(stdio_answers: dict[str, Any]) -> None:
    api = _api(stdio_answers["client"], "/techniques/T1059.001")
    text = markdown(stdio_answers["page"])
    assert text.startswith("# T1059.001 PowerShell")
    assert f"## Rules ({len(api['rules'])})" in text
    assert f"Groups ({len(api['groups'])}):" in text
    assert f"## Mitigations ({len(api['mitigations'])})" in text
    assert len(text.encode()) <= 8192


def test_the_most_mapped_technique_fits_in_8_kb(
    stdio_answers: dict[str, Any], module_settings: Settings
) -> None:
    _, mapped = _most_mapped_technique(module_settings.database_url)
    text = markdown(stdio_answers["biggest"])
    assert len(text.encode()) <= 8192
    rules = int(text.split("## Rules (", 1)[1].split(")", 1)[0])
    assert rules == mapped > 100  # every rule counted, most of them left for later pages
    assert "more rules: rules_offset=" in text


def test_searches_answer_as_the_api(stdio_answers: dict[str, Any]) -> None:
    client = stdio_answers["client"]
    api = _api(client, "/techniques", q="powershell", limit=10)
    got = answer(stdio_answers["techniques"])
    assert got["total"] == api["total"] and got["next_offset"] == 10
    assert [t["id"] for t in got["items"]] == [t["id"] for t in api["items"]]
    api = _api(client, "/rules", q="powershell", catalog="sigma", limit=5)
    got = answer(stdio_answers["rules"])
    assert got["total"] == api["total"]
    assert [r["rule_id"] for r in got["items"]] == [r["rule_id"] for r in api["items"]]


def test_rule_answers_as_the_api(stdio_answers: dict[str, Any]) -> None:
    api = _api(stdio_answers["client"], f"/rules/sigma/{stdio_answers['rule_id']}")
    got = answer(stdio_answers["rule"])
    assert got["mappings"] == _no_nulls(api["mappings"]) and got["title"] == api["title"]
    assert got["extra_fields"] == sorted(api["extra"]) and "extra" not in got
    body = api["body"]
    assert body and got["body"] == (
        body if len(body) <= 3000 else f"{body[:3000]}… ({len(body) - 3000} more characters)"
    )


def test_coverage_answers_as_the_api(stdio_answers: dict[str, Any]) -> None:
    client = stdio_answers["client"]
    api = _api(client, "/coverage", catalog="sigma", tactic="TA0002")
    got = answer(stdio_answers["summary"])
    for key in ("all", "techniques", "subtechniques", "by_tactic", "by_catalog", "filters"):
        assert got[key] == _no_nulls(api[key]), key
    api = _api(client, "/coverage", environment=ENVIRONMENT)
    got = answer(stdio_answers["effective"])
    assert got["effective"]["all"] == api["effective"]["all"]
    assert got["effective"]["environment"] == ENVIRONMENT


def test_gaps_compare_and_next_answer_as_the_api(stdio_answers: dict[str, Any]) -> None:
    client = stdio_answers["client"]
    api = _api(client, "/gaps", catalog="sigma", limit=5, offset=3)
    got = answer(stdio_answers["gaps"])
    assert (got["total"], got["offset"], got["next_offset"]) == (api["total"], 3, 8)
    assert [(g["id"], g["priority"]) for g in got["items"]] == [
        (g["id"], g["priority"]) for g in api["items"]
    ]
    api = _api(client, "/coverage/compare", a="sigma", b="open-xp-rules")
    got = answer(stdio_answers["compare"])
    assert got["counts"] == {k: len(api[k]) for k in ("both", "only_a", "only_b", "neither")}
    assert got["techniques"]["only_a"] == api["only_a"][:10]
    api = _api(client, f"/environments/{ENVIRONMENT}/next", catalog="sigma-attack18", limit=5)
    got = answer(stdio_answers["next"])
    assert got["total"] == api["total"] > 0
    keys = ("rank", "system", "data_component", "techniques_gained", "rules_unlocked")
    assert [[o[k] for k in keys] for o in got["items"]] == [
        [o[k] for k in keys] for o in api["items"]
    ]


def test_release_diff_answers_as_the_api(stdio_answers: dict[str, Any]) -> None:
    api = _api(stdio_answers["client"], "/releases/diff", **{"from": "17.1", "to": "18.1"})
    got = answer(stdio_answers["diff"])
    assert got["counts"] == api["counts"]
    assert got["techniques"]["added"] == api["techniques"]["added"][:3]
    assert [(c["catalog"], c["stale_mappings"]) for c in got["catalogs"]] == [
        (c["catalog"], c["stale_mappings"]) for c in api["catalogs"]
    ]
    assert all(len(c["stale"]) <= 3 for c in got["catalogs"])


def test_bad_values_are_tool_errors_listing_what_is_known(stdio_answers: dict[str, Any]) -> None:
    assert error_text(stdio_answers["bad_catalog"]).endswith(
        "no catalog named 'nope'; known: maxpatrol-siem, open-xp-rules, sigma, sigma-attack18"
    )
    assert f"known: {ENVIRONMENT}" in error_text(stdio_answers["bad_environment"])
    assert "execution" in error_text(stdio_answers["bad_tactic"])
    limit = error_text(stdio_answers["bad_limit"])
    assert "limit" in limit and "less than or equal to 50" in limit
    assert "no rule 'no-such-rule' in catalog 'sigma'" in error_text(stdio_answers["bad_rule"])


def test_no_database_is_one_line_on_stderr_and_nothing_on_stdout(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite"
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "mcp"],
        env={**os.environ, "KBMAP_DATABASE_URL": f"sqlite:///{missing}"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"kbmap: no kbmap database at {missing}; make one with `kbmap ingest <bundle>` or "
        "`kbmap serve`"
    ]
    assert not missing.exists()
