"""Changes since a point, in an environment: telemetry removed turns techniques from effective to
another state, each listed as effective_lost with its reason, exactly those /coverage/techniques
stopped calling effective.

Expected values come from /coverage and /coverage/techniques with environment= (not the history)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient

from tests.conftest import ROOT
from tests.history.conftest import (
    API,
    changes,
    history,
    ok,
    sigma_subset,
    technique_rows,
    upload_catalog,
)

ENDPOINTS = ROOT.parent / "shared" / "peers" / "dettect" / "data-sources-endpoints.yaml"
ENV = "lab"
REMOVED = "Process Creation"


def put_environment(c: TestClient, doc: dict[str, Any]) -> None:
    data = yaml.safe_dump(doc).encode()
    ok(c.put(f"{API}/environments/{ENV}", files={"file": (ENDPOINTS.name, data)}), 200, 201)


def effective_set(c: TestClient) -> set[str]:
    return {r["id"] for r in technique_rows(c, environment=ENV) if r["state"] == "effective"}


def test_telemetry_removed_is_effective_lost(sqlite_client: TestClient, tmp_path: Path) -> None:
    c = sqlite_client
    upload_catalog(c, sigma_subset(tmp_path), name="sigma-part")
    assert ENDPOINTS.exists(), f"shared DeTT&CT sample missing: {ENDPOINTS}"
    doc = yaml.safe_load(ENDPOINTS.read_bytes())
    put_environment(c, doc)
    before = effective_set(c)
    summary = ok(c.get(f"{API}/coverage", params={"environment": ENV}))
    [first] = history(c, environment=ENV)
    assert first["cause"]["cause"] == "environment_import"
    assert first["effective"] == summary["effective"]["all"]["effective"] == len(before) > 0
    assert first["covered"] == summary["all"]["covered"]

    sources = doc["data_sources"]
    doc["data_sources"] = [d for d in sources if d["data_source_name"] != REMOVED]
    assert len(doc["data_sources"]) == len(sources) - 1
    put_environment(c, doc)
    after = effective_set(c)
    assert before - after and not after - before

    moved = changes(c, environment=ENV, since=first["cause"]["snapshot"], limit=1000)
    assert {x["change"] for x in moved["items"]} == {"effective_lost"}
    assert {x["technique"] for x in moved["items"]} == before - after
    assert moved["total"] == len(before - after)
    assert {x["reason"] for x in moved["items"]} == {"telemetry removed from the environment"}
    assert all(x["state_before"] == "effective" != x["state_after"] for x in moved["items"])
    last = history(c, environment=ENV)[-1]
    assert last["cause"]["cause"] == "environment_replace"
    summary = ok(c.get(f"{API}/coverage", params={"environment": ENV}))
    assert last["effective"] == summary["effective"]["all"]["effective"] == len(after)

    ok(c.delete(f"{API}/environments/{ENV}"), 204)
    gone = history(c, environment=ENV)[-1]  # a deleted environment keeps its history
    assert (gone["cause"]["cause"], gone["covered"], gone["effective"]) == (
        "environment_delete",
        0,
        0,
    )
    moved = changes(c, environment=ENV, since=last["cause"]["snapshot"], limit=1000)
    assert moved["lost"] == moved["total"] == last["covered"]
    assert {x["reason"] for x in moved["items"]} == {f"environment deleted ({ENV})"}
