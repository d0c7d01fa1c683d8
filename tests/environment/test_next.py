"""What to collect next: onboarding a recommended source and re-importing raises effective by
exactly what the recommendation promised; with groups= the value is the threat weight.

The onboarding is done by editing the DeTT&CT sample (yaml.safe_load) in the test and importing it
again; threat weights come from the bundle's `uses` relationships (json)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.environment.conftest import (
    API,
    ENDPOINTS,
    coverage,
    dettect_doc,
    raw_release,
    technique_rows,
    upload,
)

CATALOG = "sigma-attack18"
SAMPLE = "Data-sources-sample"


def _next(client: TestClient, **params: str) -> dict[str, Any]:
    r = client.get(
        f"{API}/environments/{SAMPLE}/next", params={"catalog": CATALOG, "limit": "5", **params}
    )
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


def _onboarded(system: str, component: str) -> bytes:
    """The sample with `component` collected on `system` as well (a DeTT&CT details object)."""
    doc = copy.deepcopy(dettect_doc(ENDPOINTS))
    details = {
        "applicable_to": [system],
        "date_connected": "2024-01-01",
        "products": ["onboarded"],
        "available_for_data_analytics": True,
        "comment": "",
    }
    for entry in doc["data_sources"]:
        if entry["data_source_name"].lower() == component.lower():
            d = entry["data_source"]
            entry["data_source"] = [*(d if isinstance(d, list) else [d]), details]
            break
    else:
        doc["data_sources"].append({"data_source_name": component, "data_source": [details]})
    return yaml.safe_dump(doc, sort_keys=False).encode()


def _effective(client: TestClient, env: str, **params: str) -> set[str]:
    return {r["id"] for r in technique_rows(client, env, **params) if r["state"] == "effective"}


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_onboarding_raises_effective_by_what_was_promised(
    env_client: TestClient, sample_env: dict[str, Any], rank: int
) -> None:
    page = _next(env_client)
    assert page["total"] >= 3
    item = page["items"][rank - 1]
    assert item["rank"] == rank
    assert item["techniques_gained"] == len(item["techniques"]) > 0
    before = _effective(env_client, SAMPLE, catalog=CATALOG)
    name = f"next-{rank}"
    upload(env_client, name, _onboarded(item["system"], item["data_component"]), ENDPOINTS.name)
    after = _effective(env_client, name, catalog=CATALOG)
    assert before <= after
    assert len(after) - len(before) == item["techniques_gained"]
    assert after - before == set(item["techniques"])
    summary = coverage(env_client, name, catalog=CATALOG)["effective"]["all"]["effective"]
    base = coverage(env_client, SAMPLE, catalog=CATALOG)["effective"]["all"]["effective"]
    assert summary - base == item["techniques_gained"]


def test_next_is_ranked_by_value(env_client: TestClient, sample_env: dict[str, Any]) -> None:
    items = _next(env_client, limit="50")["items"]
    keys = [(i["value"], i["rules_unlocked"], i["techniques_gained"]) for i in items]
    assert keys == sorted(keys, reverse=True)
    collected = {
        (s["name"], dc.lower())
        for s in sample_env["systems"]
        for ls in s["log_sources"]
        if ls["counted"]
        for dc in ls["data_components"]
    }
    assert not {(i["system"], i["data_component"].lower()) for i in items} & collected
    assert all(len(i["rules"]) == min(i["rules_unlocked"], 100) for i in items)


@pytest.mark.parametrize("groups", ["G0016", "G0016,G0007"])
def test_next_with_groups_values_threat_weight(
    env_client: TestClient, sample_env: dict[str, Any], groups: str
) -> None:
    uses = raw_release("enterprise-attack-18.1.json.gz").uses
    named = groups.split(",")
    page = _next(env_client, groups=groups)
    assert page["items"]
    for item in page["items"]:
        weights = [sum(t in uses.get(g, set()) for g in named) for t in item["techniques"]]
        assert all(w > 0 for w in weights), item
        assert item["value"] == pytest.approx(sum(weights)), item
    top = page["items"][0]
    name = f"next-groups-{len(named)}"
    upload(env_client, name, _onboarded(top["system"], top["data_component"]), ENDPOINTS.name)
    before = _effective(env_client, SAMPLE, catalog=CATALOG, groups=groups)
    after = _effective(env_client, name, catalog=CATALOG, groups=groups)
    assert after - before == set(top["techniques"])
    assert len(after) - len(before) == top["techniques_gained"]
