"""Effective coverage with sigma-attack18 on 18.1: full telemetry, no telemetry, and the DeTT&CT
sample checked rule by rule against what /rules reports; ICS and mobile visibility.

Expected values come from the STIX bundles (json), kb/mappings/rule-platforms.yaml (yaml) and the
rules as GET /api/v1/rules reports them, never from app.coverage."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.conftest import ROOT
from tests.environment.conftest import (
    API,
    ICS,
    MOBILE,
    coverage,
    peer_file,
    raw_release,
    technique_rows,
    upload,
)

CATALOG = "sigma-attack18"
E18 = "enterprise-attack-18.1.json.gz"
STATES = ("effective", "rule_without_telemetry", "telemetry_only", "blind", "unknown")
COUNTED_OUTCOMES = ("ok", "remapped")
ZERO_STATUS = ("deprecated", "unsupported")


def _yaml(doc: dict[str, Any]) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False).encode()


def _everything_doc(per_platform: bool) -> dict[str, Any]:
    """Every 18.1 data component collected, on one system per 18.1 platform or on one system
    running all of them."""
    raw = raw_release(E18)
    sources = [{"data_component": n} for n in sorted(raw.components.values())]
    if per_platform:
        systems = [
            {"name": f"sys {p}", "platforms": [p], "log_sources": sources}
            for p in sorted(raw.platforms)
        ]
    else:
        systems = [{"name": "everything", "platforms": ["all"], "log_sources": sources}]
    return {"domain": "enterprise", "systems": systems}


@pytest.mark.parametrize("per_platform", [True, False], ids=["per-platform", "all"])
def test_collecting_everything_gives_covered_minus_unknown(
    env_client: TestClient, per_platform: bool
) -> None:
    name = f"everything-{int(per_platform)}"
    env = upload(env_client, name, _yaml(_everything_doc(per_platform)))
    assert env["report"]["unplaced"] == []
    assert env["report"]["data_components"] == len(raw_release(E18).components)
    summary = coverage(env_client, name, catalog=CATALOG)
    plain = env_client.get(f"{API}/coverage", params={"catalog": CATALOG}).json()
    assert plain["effective"] is None
    assert summary["all"] == plain["all"]
    rows = technique_rows(env_client, name, catalog=CATALOG)
    unknown = sum(1 for r in rows if r["state"] == "unknown")
    assert summary["effective"]["all"]["unknown"] == unknown
    assert summary["effective"]["all"]["effective"] == summary["all"]["covered"] - unknown
    assert summary["effective"]["all"]["effective"] > 0
    assert {r["id"] for r in rows if r["state"] == "effective"} | {
        r["id"] for r in rows if r["state"] == "unknown"
    } == {r["id"] for r in rows if r["covered"]}


@pytest.mark.parametrize(
    "systems",
    [[{"name": "empty box", "platforms": ["Windows", "Linux"]}], []],
    ids=["no-log-sources", "no-systems"],
)
def test_no_telemetry_gives_zero_effective(
    env_client: TestClient, systems: list[dict[str, Any]]
) -> None:
    name = f"empty-{len(systems)}"
    upload(env_client, name, _yaml({"domain": "enterprise", "systems": systems}))
    summary = coverage(env_client, name, catalog=CATALOG)
    block = summary["effective"]["all"]
    assert block["effective"] == 0
    assert block["telemetry_only"] == 0  # nothing collected, nothing visible
    assert block["total"] == summary["all"]["total"]
    assert sum(block[s] for s in STATES) == block["total"]
    assert summary["all"]["covered"] > 0  # the catalog does cover techniques; none can fire


# ---- the DeTT&CT sample, rule by rule ----


def _platform_table() -> dict[str, set[str]]:
    doc = yaml.safe_load((ROOT / "kb" / "mappings" / "rule-platforms.yaml").read_text())
    return {str(k).lower(): {v.lower() for v in vs} for k, vs in doc["platforms"].items()}


def _rule_platforms(rule: dict[str, Any], known: set[str], table: dict[str, set[str]]) -> set[str]:
    """The ATT&CK platforms (lower-cased) a rule targets; empty = any system."""
    out: set[str] = set()
    for p in rule["platforms"]:
        low = p.strip().lower()
        out |= {low} if low in known else table.get(low, set()) & known
    return out


def _collected(env: dict[str, Any]) -> list[tuple[set[str], set[str]]]:
    """(platforms, counted data components) per system, lower-cased, as GET shows them."""
    return [
        (
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


def _counts(rule: dict[str, Any], tid: str) -> bool:
    """A rule of weight > 0 mapped (counted) to exactly this technique."""
    if not rule["enabled"] or (rule["status"] or "").lower() in ZERO_STATUS:
        return False
    return any(m["technique"] == tid and m["outcome"] in COUNTED_OUTCOMES for m in rule["mappings"])


def _rules_of(client: TestClient, tid: str) -> list[dict[str, Any]]:
    r = client.get(f"{API}/rules", params={"catalog": CATALOG, "technique": tid, "limit": "1000"})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == len(page["items"])
    return [rule for rule in page["items"] if _counts(rule, tid)]


def _fires(
    rule: dict[str, Any],
    systems: list[tuple[set[str], set[str]]],
    known: set[str],
    table: dict[str, set[str]],
) -> bool:
    plats = _rule_platforms(rule, known, table)
    needs = {dc.lower() for dc in rule["data_components"]}
    return any(needs & comps and (not plats or plats & sp) for sp, comps in systems)


def test_sample_states_match_rules_and_telemetry(
    env_client: TestClient, sample_env: dict[str, Any]
) -> None:
    known = {p.lower() for p in raw_release(E18).platforms}
    table = _platform_table()
    systems = _collected(sample_env)
    rows = technique_rows(env_client, "Data-sources-sample", catalog=CATALOG)
    by_state = Counter(r["state"] for r in rows)
    assert by_state["effective"] > 0 and by_state["rule_without_telemetry"] > 0, by_state
    for row in rows:
        if row["state"] not in ("effective", "rule_without_telemetry"):
            continue
        rules = _rules_of(env_client, row["id"])
        firing = [r["rule_id"] for r in rules if _fires(r, systems, known, table)]
        if row["state"] == "effective":
            assert firing, (row["id"], "effective without a rule that can fire")
            assert row["effective_rules"] == len(firing), row["id"]
        else:
            assert not firing, (row["id"], "rule_without_telemetry has firing rules", firing)
            assert rules, row["id"]
            needed = {dc.lower() for r in rules for dc in r["data_components"]}
            assert {m.lower() for m in row["missing_log_sources"]} <= needed, row["id"]
            assert row["missing_log_sources"], row["id"]


def test_missing_log_sources_spelled_as_the_rules_and_release_spell_them(
    env_client: TestClient, sample_env: dict[str, Any]
) -> None:
    """`missing_log_sources` names data components as ATT&CK (and /rules) spell them."""
    names = set(raw_release(E18).components.values())
    rows = technique_rows(env_client, "Data-sources-sample", catalog=CATALOG)
    missing = {m for r in rows for m in r["missing_log_sources"] or []}
    assert missing, "the sample leaves some rules without telemetry"
    assert missing <= names, sorted(missing - names)[:10]


def test_sample_summary_counts_the_rows(env_client: TestClient, sample_env: dict[str, Any]) -> None:
    rows = technique_rows(env_client, "Data-sources-sample", catalog=CATALOG)
    block = coverage(env_client, "Data-sources-sample", catalog=CATALOG)["effective"]
    counts = Counter(r["state"] for r in rows)
    assert {s: block["all"][s] for s in STATES} == {s: counts[s] for s in STATES}
    assert block["environment"] == "Data-sources-sample"
    assert [s["name"] for s in block["by_system"]] == [s["name"] for s in sample_env["systems"]]


# ---- ICS and mobile ----


def _consistent(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """The summary's state counts are the rows'; telemetry_only rows see a component, blind
    rows see none."""
    counts = Counter(r["state"] for r in rows)
    assert {s: summary["effective"]["all"][s] for s in STATES} == {s: counts[s] for s in STATES}
    for r in rows:
        if r["state"] == "telemetry_only":
            assert r["visible_data_components"], r["id"]
        if r["state"] == "blind":
            assert r["visible_data_components"] == [], r["id"]


def test_ics_coverage_with_the_sample(env_client: TestClient) -> None:
    upload(env_client, "ics-cov", peer_file(ICS), ICS.name)
    raw = raw_release("ics-attack-18.1.json.gz")
    summary = coverage(env_client, "ics-cov", domain="ics")
    assert (summary["domain"], summary["version"]) == ("ics", "18.1")
    rows = technique_rows(env_client, "ics-cov", domain="ics")
    _consistent(summary, rows)
    collected = {"Process Creation", "User Account Authentication", "Service Metadata"}
    # ICS 18 techniques run on platform "None": any system sees what it collects
    want = {t for dc in collected for t in raw.detectable.get(dc, set())}
    seen = {r["id"] for r in rows if r["visible_data_components"]}
    assert seen == want & {r["id"] for r in rows}
    assert summary["effective"]["all"]["telemetry_only"] + summary["effective"]["all"][
        "blind"
    ] == len(rows) - sum(1 for r in rows if r["rules"])


def test_mobile_api_calls_visibility(env_client: TestClient) -> None:
    raw = raw_release("mobile-attack-18.1.json.gz")
    upload(env_client, "mobile-cov", peer_file(MOBILE), MOBILE.name)
    summary = coverage(env_client, "mobile-cov", domain="mobile")
    rows = technique_rows(env_client, "mobile-cov", domain="mobile")
    _consistent(summary, rows)
    is_component = "api calls" in raw.components
    detected = raw.detectable.get("API Calls", set()) if is_component else set()
    seeing = {r["id"] for r in rows if "API Calls" in (r["visible_data_components"] or [])}
    assert seeing == detected & {r["id"] for r in rows}
    assert bool(seeing) is bool(detected)
    by_system = summary["effective"]["by_system"]
    assert [(s["name"], s["visible"]) for s in by_system] == [("Phones", len(seeing))]


def test_the_sample_reads_on_17_1_by_its_detects_relationships(
    env_client: TestClient, sample_env: dict[str, Any]
) -> None:
    """17.1 is the older detection model (data component `detects` technique): the same
    environment reads there, each row seeing exactly the collected components that detect it
    on a system of its platforms, per the 17.1 bundle."""
    raw = raw_release("enterprise-attack-17.1.json.gz")
    env = sample_env["name"]
    rows = technique_rows(env_client, env, version="17.1", catalog=CATALOG)
    _consistent(coverage(env_client, env, version="17.1", catalog=CATALOG), rows)
    on: dict[str, set[str]] = {}  # platform (lower) → components counted on a system of it
    for system in sample_env["systems"]:
        counted = {dc for s in system["log_sources"] if s["counted"] for dc in s["data_components"]}
        for p in system["platforms"]:
            on.setdefault(p.lower(), set()).update(counted)
    for r in rows:
        seen = set().union(*(on.get(p.lower(), set()) for p in r["platforms"]))
        if r["id"] in sample_env["report"]["exceptions"]:
            seen = set()
        want = {dc for dc in seen if r["id"] in raw.detectable.get(dc, set())}
        assert set(r["visible_data_components"]) == want, r["id"]
    assert any(r["visible_data_components"] for r in rows)
