"""Importing the DeTT&CT samples unchanged: systems and data sources listed, names that are not
data components of the release reported (never dropped); ICS and mobile against their releases.

Expected values come from yaml.safe_load of the sample and json of the STIX bundle."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.core.config import Settings
from app.environment import service as environment_service
from tests.environment.conftest import (
    API,
    ENDPOINTS,
    ICS,
    MOBILE,
    dettect_doc,
    engine_of,
    peer_file,
    raw_release,
    upload,
)

E18 = "enterprise-attack-18.1.json.gz"


def _details(entry: dict[str, Any]) -> list[dict[str, Any]]:
    d = entry["data_source"]
    return d if isinstance(d, list) else [d]


def _expected_entries(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(data source name, system, details) for every system a details object applies to."""
    systems = [s["applicable_to"] for s in doc["systems"]]
    out = []
    for entry in doc["data_sources"]:
        for d in _details(entry):
            targets = d["applicable_to"]
            targets = systems if [t.lower() for t in targets] == ["all"] else targets
            out += [(entry["data_source_name"], s, d) for s in targets]
    return out


def _counted(d: dict[str, Any]) -> bool:
    quality = d.get("data_quality") or {}
    return bool(d.get("available_for_data_analytics", True)) and (
        not quality or any(v > 0 for v in quality.values())
    )


def _platforms(written: Any, known: set[str]) -> list[str]:
    names = written if isinstance(written, list) else [written]
    if [n.lower() for n in names] == ["all"]:
        return sorted(known)
    return sorted(n for n in names if n in known)


def test_endpoints_sample_systems_and_data_sources_listed(
    env_client: TestClient, sample_env: dict[str, Any]
) -> None:
    doc = dettect_doc(ENDPOINTS)
    raw = raw_release(E18)
    shown = env_client.get(f"{API}/environments/Data-sources-sample")
    assert shown.status_code == 200, shown.text
    env = shown.json()
    assert env == sample_env
    assert (env["format_id"], env["domain"], env["attack_version"]) == (
        "dettect",
        "enterprise",
        "18.1",
    )
    assert env["source"] == ENDPOINTS.name
    assert [s["name"] for s in env["systems"]] == [s["applicable_to"] for s in doc["systems"]]
    for system, written in zip(env["systems"], doc["systems"], strict=True):
        assert sorted(system["platforms"]) == _platforms(written["platform"], raw.platforms)
    expected = _expected_entries(doc)
    assert env["report"]["log_sources"] == len(expected)
    assert env["report"]["systems"] == len(doc["systems"])
    by_system = {s["name"]: s["log_sources"] for s in env["systems"]}
    for name, system, details in expected:
        listed = [ls for ls in by_system[system] if name in ls["written"]]
        assert len(listed) == 1, (name, system, by_system[system])
        source = listed[0]
        canonical = raw.components.get(name.lower())
        assert source["data_components"] == ([canonical] if canonical else [])
        assert source["products"] == [p for p in details.get("products") or [] if p]
        if canonical:
            assert source["counted"] is _counted(details), (name, system)
    assert env["report"]["exceptions"] == [e["technique_id"] for e in doc.get("exceptions", [])]


def test_endpoints_names_not_in_18_1_are_unplaced_none_dropped(
    sample_env: dict[str, Any],
) -> None:
    doc = dettect_doc(ENDPOINTS)
    raw = raw_release(E18)
    names = {e["data_source_name"] for e in doc["data_sources"]}
    foreign = {n for n in names if n.lower() not in raw.components}
    assert foreign, "the sample is expected to use DeTT&CT data sources that 18.1 lacks"
    unplaced = sample_env["report"]["unplaced"]
    for name in foreign:
        hits = [u for u in unplaced if u["written"] == name or u["written"].startswith(name + " [")]
        assert len(hits) == 1, (name, unplaced)
        want = {s for n, s, _d in _expected_entries(doc) if n == name}
        assert set(hits[0]["systems"]) == want
    assert len(unplaced) == len(foreign)
    placed = {
        dc for s in sample_env["systems"] for ls in s["log_sources"] for dc in ls["data_components"]
    }
    assert placed == {raw.components[n.lower()] for n in names - foreign}
    # none dropped: every (name, system) of the file is placed on its system or unplaced there
    for name, system, _d in _expected_entries(doc):
        on_system = next(s for s in sample_env["systems"] if s["name"] == system)
        is_placed = any(
            ls["written"] == name and ls["data_components"] for ls in on_system["log_sources"]
        )
        is_unplaced = any(name in u["written"] and system in u["systems"] for u in unplaced)
        assert is_placed != is_unplaced, (name, system)


def test_service_import_of_the_bytes_on_disk(
    env_client: TestClient, env_settings: Settings, sample_env: dict[str, Any]
) -> None:
    engine = engine_of(env_client)
    result = environment_service.import_environment(
        engine, env_settings, file_name=ENDPOINTS.name, data=peer_file(ENDPOINTS)
    )
    assert result.replaced is True
    assert result.environment.name == "Data-sources-sample"  # the file's `name`, slugged
    assert result.environment.revision == sample_env["revision"] + 1
    again = result.environment.model_dump(mode="json")
    for key in ("systems", "report", "format_id", "domain", "attack_version"):
        assert again[key] == sample_env[key], key
    with Session(engine) as s:
        listed = environment_service.list_environments(s)
    assert "Data-sources-sample" in [e.name for e in listed]


def test_ics_sample_against_ics_18_1(env_client: TestClient) -> None:
    doc = dettect_doc(ICS)
    raw = raw_release("ics-attack-18.1.json.gz")
    env = upload(env_client, "ics-sample", peer_file(ICS), ICS.name)
    assert (env["domain"], env["attack_version"]) == ("ics", "18.1")  # from the file's domain
    written = {p for s in doc["systems"] for p in s["platform"]}
    unknown = {p for p in written if p not in raw.platforms}
    assert {u["written"] for u in env["report"]["unknown_platforms"]} == unknown
    names = {e["data_source_name"] for e in doc["data_sources"]}
    placed = {dc for s in env["systems"] for ls in s["log_sources"] for dc in ls["data_components"]}
    assert placed == {raw.components[n.lower()] for n in names if n.lower() in raw.components}
    assert len(env["report"]["unplaced"]) == sum(n.lower() not in raw.components for n in names)


def test_mobile_sample_against_mobile_18_1(env_client: TestClient) -> None:
    doc = dettect_doc(MOBILE)
    raw = raw_release("mobile-attack-18.1.json.gz")
    env = upload(env_client, "mobile-sample", peer_file(MOBILE), MOBILE.name)
    assert (env["domain"], env["attack_version"]) == ("mobile", "18.1")
    [system] = env["systems"]
    assert sorted(system["platforms"]) == sorted(doc["systems"][0]["platform"])
    api_calls = "api calls" in raw.components
    [source] = system["log_sources"]
    assert source["written"] == "API Calls"
    assert source["data_components"] == (["API Calls"] if api_calls else [])
    assert bool(env["report"]["unplaced"]) is not api_calls
