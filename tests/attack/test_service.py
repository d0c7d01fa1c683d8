"""The technique page and object queries on both backends, checked against the raw bundles."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from app.attack import service
from app.core.errors import NotFound
from tests import rawdata

E17, E18 = "enterprise-attack-17.1.json.gz", "enterprise-attack-18.1.json.gz"


def _page(engine: Engine, attack_id: str, version: str | None = None, domain: str | None = None):  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        releases = service.releases_for_lookup(s, domain=domain, version=version)
        return service.get_technique_page(s, releases=releases, attack_id=attack_id)


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


def test_active_technique_counts_match_the_shared_readme(loaded_engine: Engine) -> None:
    with Session(loaded_engine) as s:
        counts = {(r.domain, r.version): r.technique_count for r in service.list_releases(s)}
    assert counts[("enterprise", "18.1")] == len(rawdata.active_techniques(E18)) == 691
    assert (
        counts[("mobile", "18.1")]
        == len(rawdata.active_techniques("mobile-attack-18.1.json.gz"))
        == 124
    )
    assert (
        counts[("ics", "18.1")] == len(rawdata.active_techniques("ics-attack-18.1.json.gz")) == 83
    )


def test_tactics_follow_the_matrix_order(loaded_engine: Engine) -> None:
    matrix = next(o for o in rawdata.objects(E18) if o["type"] == "x-mitre-matrix")
    objs = rawdata.by_stix_id(E18)
    with Session(loaded_engine) as s:
        tactics = service.list_tactics(s, release=service.get_release(s))
    assert [t.shortname for t in tactics] == [
        objs[t]["x_mitre_shortname"] for t in matrix["tactic_refs"]
    ]


def test_list_techniques_filters(loaded_engine: Engine) -> None:
    raw = [o for o in rawdata.objects(E18) if o["type"] == "attack-pattern" and rawdata.active(o)]
    with Session(loaded_engine) as s:
        release = service.get_release(s)
        page = service.list_techniques(s, release=release, tactic="lateral-movement", limit=1000)
        only_subs = service.list_techniques(s, release=release, subtechniques="only", limit=5)
        esxi = service.list_techniques(s, release=release, platform="esxi", limit=1000)
    assert page.total == sum(
        any(p["phase_name"] == "lateral-movement" for p in o.get("kill_chain_phases", []))
        for o in raw
    )
    assert only_subs.total == sum(bool(o.get("x_mitre_is_subtechnique")) for o in raw)
    assert len(only_subs.items) == 5
    assert esxi.total == sum("ESXi" in o.get("x_mitre_platforms", []) for o in raw)


def test_mitigation_and_group_pages(loaded_engine: Engine) -> None:
    objs = rawdata.by_stix_id(E18)
    m = rawdata.by_ext_id(E18, "course-of-action", "M1047")
    expected = sorted(
        rawdata.ext_id(objs[r["target_ref"]]) or ""
        for r in rawdata.relationships(E18, "mitigates")
        if r["source_ref"] == m["id"] and rawdata.active(objs[r["target_ref"]])
    )
    with Session(loaded_engine) as s:
        rel = service.releases_for_lookup(s, domain=None, version=None)
        page = service.get_object_read(s, releases=rel, kind="mitigation", attack_id="m1047")
        group = service.get_object_read(s, releases=rel, kind="group", attack_id="G0016")
    assert [t.id for t in page.related["techniques"]] == expected
    g = rawdata.by_ext_id(E18, "intrusion-set", "G0016")
    direct = {
        rawdata.ext_id(objs[r["target_ref"]])
        for r in rawdata.relationships(E18, "uses")
        if r["source_ref"] == g["id"]
        and r["target_ref"].startswith("attack-pattern--")
        and rawdata.active(objs[r["target_ref"]])
    }
    assert direct <= {t.id for t in group.related["techniques"]}
