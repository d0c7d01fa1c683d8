"""The technique page's ATT&CK side on both backends, checked against the raw bundles."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from app.attack import service as attack_service
from app.core.errors import NotFound
from app.technique_page.attack_side import attack_side
from tests import rawdata

E17, E18 = "enterprise-attack-17.1.json.gz", "enterprise-attack-18.1.json.gz"


def _page(engine: Engine, attack_id: str, version: str | None = None, domain: str | None = None):  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        releases = attack_service.releases_for_lookup(s, domain=domain, version=version)
        return attack_side(s, releases=releases, attack_id=attack_id)


def _raw_mitigations(name: str, attack_id: str) -> dict[str, str]:
    tech = rawdata.by_ext_id(name, "attack-pattern", attack_id)
    objs = rawdata.by_stix_id(name)
    return {
        rawdata.ext_id(objs[r["source_ref"]]) or "": r.get("description", "")
        for r in rawdata.relationships(name, "mitigates")
        if r["target_ref"] == tech["id"] and rawdata.active(objs[r["source_ref"]])
    }


def test_17_page_matches_the_seed(loaded_engine: Engine) -> None:
    page = _page(loaded_engine, "t1550.001", version="17.1")
    assert (page.id, page.name, page.version) == ("T1550.001", "Application Access Token", "17.1")
    assert [m.id for m in page.mitigations] == ["M1013", "M1021", "M1036", "M1041", "M1047"]
    assert {m.id: m.description for m in page.mitigations} == _raw_mitigations(E17, "T1550.001")
    assert page.tactics == ["defense-evasion", "lateral-movement"]
    assert page.parent is not None and page.parent.id == "T1550"
    [dc] = page.data_components
    assert (
        dc.data_source.id if dc.data_source else None,
        dc.data_source.name if dc.data_source else None,
        dc.name,
    ) == ("DS0006", "Web Credential", "Web Credential Usage")
    assert dc.description.startswith("Monitor the use of application access tokens")
    assert page.detection_strategies == []


def test_18_page_has_detection_strategy_with_analytics(loaded_engine: Engine) -> None:
    page = _page(loaded_engine, "T1550.001")
    assert page.version == "18.1"
    assert [s.id for s in page.detection_strategies] == ["DET0185"]
    objs = rawdata.by_stix_id(E18)
    det = rawdata.by_ext_id(E18, "x-mitre-detection-strategy", "DET0185")
    raw_analytics = [objs[a] for a in det["x_mitre_analytic_refs"]]
    got = page.detection_strategies[0].analytics
    assert [a.id for a in got] == [rawdata.ext_id(a) for a in raw_analytics]
    for a, raw in zip(got, raw_analytics, strict=True):
        assert a.platforms == raw["x_mitre_platforms"]
        assert [
            (ls.data_component.name if ls.data_component else None, ls.name, ls.channel)
            for ls in a.log_sources
        ] == [
            (objs[r["x_mitre_data_component_ref"]]["name"], r["name"], r["channel"])
            for r in raw["x_mitre_log_source_references"]
        ]
    expected_dcs = {
        objs[r["x_mitre_data_component_ref"]]["name"]
        for a in raw_analytics
        for r in a["x_mitre_log_source_references"]
    }
    assert {d.name for d in page.data_components} == expected_dcs
    assert {m.id: m.description for m in page.mitigations} == _raw_mitigations(E18, "T1550.001")


def test_revoked_technique_names_its_replacement(loaded_engine: Engine) -> None:
    page = _page(loaded_engine, "T1527")
    assert page.revoked is True
    assert page.revoked_by is not None and page.revoked_by.id == "T1550.001"


@pytest.mark.parametrize("attack_id", ["T1059.001", "T1566", "T1078.004"])
def test_groups_include_those_reached_through_campaigns(
    loaded_engine: Engine, attack_id: str
) -> None:
    objs = rawdata.by_stix_id(E18)
    tech = rawdata.by_ext_id(E18, "attack-pattern", attack_id)["id"]
    users = {r["source_ref"] for r in rawdata.relationships(E18, "uses") if r["target_ref"] == tech}
    groups = {u for u in users if u.startswith("intrusion-set--")}
    campaigns = {u for u in users if u.startswith("campaign--")}
    groups |= {
        r["target_ref"]
        for r in rawdata.relationships(E18, "attributed-to")
        if r["source_ref"] in campaigns
    }
    expected = sorted(rawdata.ext_id(objs[g]) or "" for g in groups if rawdata.active(objs[g]))
    page = _page(loaded_engine, attack_id)
    assert [g.id for g in page.groups] == expected
    assert len(page.campaigns) == len([c for c in campaigns if rawdata.active(objs[c])])


def test_ids_from_other_domains_are_found_without_naming_the_domain(loaded_engine: Engine) -> None:
    ics = _page(loaded_engine, "T0800")
    assert ics.domain == "ics"
    with pytest.raises(NotFound, match=r"technique T9999 is not in ATT&CK enterprise 18\.1"):
        _page(loaded_engine, "T9999", domain="enterprise")
