"""Object queries on both backends, checked against the raw bundles."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session

from app.attack import service
from tests import rawdata

E17, E18 = "enterprise-attack-17.1.json.gz", "enterprise-attack-18.1.json.gz"


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
