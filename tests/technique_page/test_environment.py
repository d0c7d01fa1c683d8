"""The technique page in an environment: each rule says whether it can fire there, and why not.

Expected values come from other routes than app.coverage: the environment as GET
/environments/{name} shows it, each rule as GET /rules/{catalog}/{rule_id} reports it, the
rule-platform table read with yaml and the 18.1 bundle's platforms read with json."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.conftest import ROOT
from tests.environment.conftest import (
    API,
    ENDPOINTS,
    client_with_sample,
    peer_file,
    raw_release,
    upload,
)

ENV = "Data-sources-sample"
E18 = "enterprise-attack-18.1.json.gz"
ZERO_STATUS = ("deprecated", "unsupported")  # statuses the default coverage weights give 0
TECHNIQUE = "T1059.001"


@pytest.fixture(scope="module")
def page_client(
    catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The app on a copy of the catalog database with the DeTT&CT endpoints sample imported."""
    yield from client_with_sample(catalog_sqlite_file, tmp_path_factory.mktemp("page-env"), ENV)


def _page(client: TestClient, tid: str = TECHNIQUE, **params: str) -> dict[str, Any]:
    r = client.get(f"{API}/techniques/{tid}", params={"version": "18.1", **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _rule(client: TestClient, catalog: str, rule_id: str) -> dict[str, Any]:
    r = client.get(f"{API}/rules/{quote(catalog)}/{quote(rule_id, safe='')}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _platform_table() -> dict[str, set[str]]:
    doc = yaml.safe_load((ROOT / "kb" / "mappings" / "rule-platforms.yaml").read_text())
    return {str(k).lower(): {v.lower() for v in vs} for k, vs in doc["platforms"].items()}


def _rule_platforms(rule: dict[str, Any]) -> set[str]:
    """ATT&CK platforms (lower-cased) the rule targets; empty = any system."""
    known = {p.lower() for p in raw_release(E18).platforms}
    table = _platform_table()
    out: set[str] = set()
    for p in rule["platforms"]:
        low = p.strip().lower()
        out |= {low} if low in known else table.get(low, set()) & known
    return out


def _systems(env: dict[str, Any]) -> list[tuple[str, set[str], set[str]]]:
    """(name, platforms, counted data components) per system, lower-cased, as GET shows them."""
    return [
        (
            s["name"],
            {p.lower() for p in s["platforms"]},
            {
                dc.lower()
                for ls in s["log_sources"]
                if ls["counted"]
                for dc in ls["data_components"]
            },
        )
        for s in env["systems"]
    ]


def _expected(rule: dict[str, Any], systems: list[tuple[str, set[str], set[str]]]) -> list[str]:
    """The systems a counted rule fires on: one of its platforms (any when none) and one of
    its data components collected there."""
    plats = _rule_platforms(rule)
    needs = {dc.lower() for dc in rule["data_components"]}
    return [n for n, sp, comps in systems if needs & comps and (not plats or plats & sp)]


def _counts(rule: dict[str, Any]) -> bool:
    return bool(rule["enabled"]) and (rule["status"] or "").lower() not in ZERO_STATUS


def _check_rule(ref: dict[str, Any], rule: dict[str, Any], systems: Any) -> None:
    where = (ref["catalog"], ref["rule_id"])
    if not _counts(rule):
        assert ref["fires"] is False, where
        assert ref["why_not"] == "disabled or deprecated: does not count", where
        return
    firing = _expected(rule, systems)
    assert ref["fires"] is bool(firing), (where, ref["why_not"], firing)
    if firing:
        assert ref["systems"] == firing and ref["why_not"] is None, where
    elif not rule["data_components"]:
        assert ref["why_not"] == "its log sources are not placed by kbmap (unknown)", where
    elif _rule_platforms(rule) and not any(_rule_platforms(rule) & sp for _, sp, _ in systems):
        assert ref["why_not"].startswith("no system runs "), (where, ref["why_not"])
    else:
        assert ref["why_not"].startswith("not collected on "), (where, ref["why_not"])
        for dc in rule["data_components"]:
            assert dc in ref["why_not"], (where, dc, ref["why_not"])


def test_each_rule_fires_as_its_telemetry_and_platforms_say(page_client: TestClient) -> None:
    env = page_client.get(f"{API}/environments/{ENV}").json()
    systems = _systems(env)
    page = _page(page_client, environment=ENV)
    refs = page["rules"] + page["subtechnique_rules"]
    assert len(refs) > 20
    fires = [r["fires"] for r in refs]
    assert True in fires and False in fires, "the technique must show both kinds"
    reasons = {r["why_not"].split(":")[0] for r in refs if r["why_not"]}
    assert len(reasons) >= 2, reasons
    for ref in refs:
        _check_rule(ref, _rule(page_client, ref["catalog"], ref["rule_id"]), systems)


def test_a_parent_page_judges_its_subtechniques_rules_too(page_client: TestClient) -> None:
    env = page_client.get(f"{API}/environments/{ENV}").json()
    page = _page(page_client, "T1003", environment=ENV, catalog="sigma-attack18")
    subs = page["subtechnique_rules"]
    assert subs and all(r["fires"] is not None for r in subs)
    for ref in subs[:60]:
        _check_rule(ref, _rule(page_client, ref["catalog"], ref["rule_id"]), _systems(env))


def test_without_environment_rules_say_nothing(page_client: TestClient) -> None:
    page = _page(page_client)
    refs = page["rules"] + page["subtechnique_rules"]
    assert refs
    assert all(r["fires"] is None and r["why_not"] is None and r["systems"] is None for r in refs)


def test_unknown_environment_is_404_listing_the_known(page_client: TestClient) -> None:
    r = page_client.get(f"{API}/techniques/{TECHNIQUE}", params={"environment": "nowhere"})
    assert r.status_code == 404, r.text
    error = r.json()["error"]
    assert error["code"] == "not_found" and error["location"]["field"] == "environment"
    assert ENV in error["message"]


def test_reimport_and_delete_change_the_cached_page(page_client: TestClient) -> None:
    """The cache key holds the environment's state: a replaced environment answers anew, a
    deleted one is a 404, even right after the page was served from the cache."""
    name = "page-cache-env"
    upload(page_client, name, peer_file(ENDPOINTS), ENDPOINTS.name)
    before = _page(page_client, environment=name)
    assert before == _page(page_client, environment=name)  # served again (from the cache)
    assert any(r["fires"] for r in before["rules"])
    empty = {"domain": "enterprise", "systems": [{"name": "bare", "platforms": ["Windows"]}]}
    upload(page_client, name, yaml.safe_dump(empty).encode())
    after = _page(page_client, environment=name)
    assert [r["rule_id"] for r in after["rules"]] == [r["rule_id"] for r in before["rules"]]
    assert not any(r["fires"] for r in after["rules"])
    assert page_client.delete(f"{API}/environments/{name}").status_code in (200, 204)
    r = page_client.get(f"{API}/techniques/{TECHNIQUE}", params={"environment": name})
    assert r.status_code == 404, r.text
