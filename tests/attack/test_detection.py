"""technique ↔ data component links for the ≤17 and 18+ detection models, from raw bundles."""

from __future__ import annotations

import pytest

from app.attack.detection import derive_links
from app.attack.stix import parse_bundle
from tests import rawdata
from tests.conftest import ATTACK_DIR

pytestmark = pytest.mark.integration  # reads whole real enterprise releases


def _links(name: str) -> tuple[set[tuple[str, str]], str]:
    parsed = parse_bundle((ATTACK_DIR / name).read_bytes(), source=name, max_bytes=300 << 20)
    links, model = derive_links(parsed.objects, parsed.relationships)
    return {(t, dc) for t, dc, _s, _a in links}, model


def test_17_links_are_the_data_component_detects_relationships() -> None:
    name = "enterprise-attack-17.1.json.gz"
    links, model = _links(name)
    expected = {
        (r["target_ref"], r["source_ref"])
        for r in rawdata.relationships(name, "detects")
        if r["source_ref"].startswith("x-mitre-data-component--")
    }
    assert model == "data-component"
    assert links == expected


def test_18_links_go_through_strategies_and_analytics() -> None:
    name = "enterprise-attack-18.1.json.gz"
    links, model = _links(name)
    objs = rawdata.by_stix_id(name)
    expected = set()
    for r in rawdata.relationships(name, "detects"):
        strategy = objs[r["source_ref"]]
        for a in strategy.get("x_mitre_analytic_refs", []):
            for ls in objs[a].get("x_mitre_log_source_references", []):
                expected.add((r["target_ref"], ls["x_mitre_data_component_ref"]))
    assert model == "detection-strategy"
    assert links == expected
    t1550 = rawdata.by_ext_id(name, "attack-pattern", "T1550.001")["id"]
    names = {objs[dc]["name"] for t, dc in links if t == t1550}
    assert "Web Credential Usage" in names
