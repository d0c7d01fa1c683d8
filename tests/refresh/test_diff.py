"""Release diffs on the shared 16.1, 17.1 and 18.1 enterprise releases, checked against the raw
bundles; the impact on catalogs (a legacy 16.1 catalog, the real Sigma one); API and CLI."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from app.attack.changes import ReleaseView, build_view, diff_releases
from app.attack.ingest import ingest_sources
from app.catalog import service as catalog_service
from app.catalog.source import open_source
from app.core.config import Limits, Settings
from app.core.db import make_engine
from app.core.errors import NotFound
from app.main import create_app
from app.models import init_db
from app.refresh.impact import release_diff
from app.refresh.models import ReleaseDiff
from app.refresh.stale import MappingRow as Row
from app.refresh.stale import stale_mappings
from tests import rawdata
from tests.cli.test_attack import kbmap
from tests.conftest import CATALOG_DIR, attack_file
from tests.refresh.synthetic import LEGACY_CATALOG

E = "enterprise-attack-{}.json.gz"
KINDS = {
    "course-of-action": "mitigation",
    "x-mitre-data-source": "data_source",
    "x-mitre-data-component": "data_component",
    "x-mitre-detection-strategy": "detection_strategy",
    "x-mitre-analytic": "analytic",
}


# ---- the database: every shared catalog, plus 16.1 and a catalog made against it ----------------


@pytest.fixture(scope="module")
def db_path(catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("diff") / "kbmap.sqlite"
    shutil.copy(catalog_sqlite_file, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    ingest_sources(engine, [attack_file(E.format("16.1"))], limits=Limits())
    legacy = tmp_path_factory.mktemp("legacy") / "legacy16.yaml"
    legacy.write_text(LEGACY_CATALOG)
    s = Settings(database_url=url, environment="test")
    catalog_service.import_catalog(engine, s, source=open_source(str(legacy), s.limits))
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="module")
def engine(db_path: Path) -> Iterator[Engine]:
    e = make_engine(f"sqlite:///{db_path}")
    yield e
    e.dispose()


@lru_cache(maxsize=8)
def diff_of(engine: Engine, a: str, b: str, catalogs: tuple[str, ...] = ()) -> ReleaseDiff:
    with Session(engine) as session:
        return release_diff(
            session,
            domain="enterprise",
            from_version=a,
            to_version=b,
            catalogs=list(catalogs) or ["legacy16"],
        )


# ---- independent expectations from the raw bundles ------------------------------------------


def status(o: dict[str, Any]) -> str:
    return (
        "revoked"
        if o.get("revoked")
        else ("deprecated" if o.get("x_mitre_deprecated") else "active")
    )


def phases(o: dict[str, Any]) -> list[str]:
    return [
        p["phase_name"]
        for p in o.get("kill_chain_phases", [])
        if p["kill_chain_name"].startswith("mitre")
    ]


@dataclass
class Raw:
    techniques: dict[str, dict[str, Any]]
    parent: dict[str, str]
    revoked_by: dict[str, str]
    live: dict[str, set[str]] = field(default_factory=dict)  # stix type → live stix ids


@lru_cache(maxsize=4)
def raw(version: str, domain: str = "enterprise") -> Raw:
    objs = rawdata.objects(f"{domain}-attack-{version}.json.gz")
    techs = {rawdata.ext_id(o) or "": o for o in objs if o["type"] == "attack-pattern"}
    ext = {o["id"]: rawdata.ext_id(o) or "" for o in techs.values()}
    parent, revoked_by = {}, {}
    for r in objs:
        if r["type"] != "relationship" or r["source_ref"] not in ext or r["target_ref"] not in ext:
            continue
        if r["relationship_type"] == "revoked-by":
            revoked_by[ext[r["source_ref"]]] = ext[r["target_ref"]]
        elif r["relationship_type"] == "subtechnique-of" and status(r) == "active":
            parent[ext[r["source_ref"]]] = ext[r["target_ref"]]
    live: dict[str, set[str]] = {}
    for o in objs:
        if o["type"] in (*KINDS, "x-mitre-tactic") and status(o) == "active":
            live.setdefault(o["type"], set()).add(o["id"])
    return Raw(techs, parent, revoked_by, live)


def final(r: Raw, tid: str) -> str:
    while tid in r.revoked_by:
        tid = r.revoked_by[tid]
    return tid


def expected(a: str, b: str, domain: str = "enterprise") -> dict[str, list[str]]:
    A, B = raw(a, domain), raw(b, domain)
    sa = {t: status(o) for t, o in A.techniques.items()}
    sb = {t: status(o) for t, o in B.techniques.items()}
    both = sorted(t for t in sb if sb[t] == "active" and sa.get(t) == "active")
    ta, tb = A.techniques, B.techniques
    new = [t for t in sb if sb[t] == "active" and sa.get(t) != "active"]
    again = {t for t in new if t in ta and ta[t]["id"] == tb[t]["id"]}  # same STIX object
    out = {
        "techniques_added": sorted(t for t in new if t not in again),
        "techniques_reinstated": sorted(again),
        "techniques_revoked": sorted(
            t for t in sb if sb[t] == "revoked" and sa.get(t) != "revoked"
        ),
        "techniques_deprecated": sorted(
            t for t in sb if sb[t] == "deprecated" and sa.get(t) != "deprecated"
        ),
        "techniques_renamed": [t for t in both if ta[t]["name"] != tb[t]["name"]],
        "techniques_tactics_changed": [t for t in both if set(phases(ta[t])) != set(phases(tb[t]))],
        "techniques_platforms_changed": [
            t
            for t in both
            if set(ta[t].get("x_mitre_platforms", [])) != set(tb[t].get("x_mitre_platforms", []))
        ],
        "techniques_subtechnique_changed": [
            t
            for t in both
            if bool(ta[t].get("x_mitre_is_subtechnique"))
            != bool(tb[t].get("x_mitre_is_subtechnique"))
            or A.parent.get(t) != B.parent.get(t)
        ],
        "techniques_description_changed": [
            t for t in both if ta[t].get("description", "") != tb[t].get("description", "")
        ],
        "tactics_added": sorted(B.live["x-mitre-tactic"] - A.live["x-mitre-tactic"]),
        "tactics_retired": sorted(A.live["x-mitre-tactic"] - B.live["x-mitre-tactic"]),
    }
    for stype, kind in KINDS.items():
        was, now = A.live.get(stype, set()), B.live.get(stype, set())
        out[f"{kind}_added"] = sorted(now - was)
        out[f"{kind}_removed"] = sorted(was - now)
    return out


PAIRS = [("16.1", "17.1"), ("17.1", "18.1"), ("16.1", "18.1")]


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_counts_and_ids_equal_the_raw_bundles(engine: Engine, a: str, b: str) -> None:
    d = diff_of(engine, a, b)
    want = expected(a, b)
    assert d.counts == {k: len(v) for k, v in want.items()}
    t = d.techniques
    assert [x.id for x in t.added] == want["techniques_added"]
    assert [x.id for x in t.reinstated] == want["techniques_reinstated"]
    assert [x.id for x in t.revoked] == want["techniques_revoked"]
    assert [x.id for x in t.deprecated] == want["techniques_deprecated"]
    assert [x.id for x in t.renamed] == want["techniques_renamed"]
    assert [x.id for x in t.tactics_changed] == want["techniques_tactics_changed"]
    assert [x.id for x in t.platforms_changed] == want["techniques_platforms_changed"]
    assert [x.id for x in t.description_changed] == want["techniques_description_changed"]
    B = raw(b)
    for r in t.revoked:
        assert r.replacement == final(B, r.id)
        assert status(B.techniques[r.replacement]) == "active"


def test_16_to_17_revokes_dll_side_loading_and_adds_24(engine: Engine) -> None:
    d = diff_of(engine, "16.1", "17.1")
    assert [(r.id, r.name, r.revoked_by, r.replacement, r.chain) for r in d.techniques.revoked] == [
        ("T1574.002", "DLL Side-Loading", "T1574.001", "T1574.001", ["T1574.002", "T1574.001"])
    ]
    assert d.counts["techniques_added"] == 24
    assert d.detection_model_before == d.detection_model_after == "data-component"
    # the tactic move 17.1 made: T1112 Modify Registry also under persistence
    assert [(x.id, x.added, x.removed) for x in d.techniques.tactics_changed] == [
        ("T1112", ["persistence"], [])
    ]


def test_17_to_18_adds_12_renames_2_and_replaces_the_detection_model(engine: Engine) -> None:
    d = diff_of(engine, "17.1", "18.1")
    assert d.counts["techniques_added"] == 12
    assert d.counts["techniques_revoked"] == 0
    assert [(r.id, r.old_name, r.new_name) for r in d.techniques.renamed] == [
        ("T1497.003", "Time Based Evasion", "Time Based Checks"),
        ("T1552.003", "Bash History", "Shell History"),
    ]
    assert (d.detection_model_before, d.detection_model_after) == (
        "data-component",
        "detection-strategy",
    )
    b18 = raw("18.1").live
    assert d.counts["detection_strategy_added"] == len(b18["x-mitre-detection-strategy"]) == 691
    assert d.counts["analytic_added"] == len(b18["x-mitre-analytic"])
    # 18.x deprecates every data source (bundle README); its data components stay
    assert d.counts["data_source_removed"] == len(raw("17.1").live["x-mitre-data-source"])
    assert "x-mitre-data-source" not in b18
    assert d.counts["data_component_removed"] == d.counts["data_component_added"] == 0
    assert d.tactics.order_before == d.tactics.order_after
    assert len(d.tactics.order_after) == 14


def test_description_text_only_when_asked(engine: Engine) -> None:
    flagged = diff_of(engine, "17.1", "18.1").techniques.description_changed
    assert flagged and all(x.old is None and x.new is None for x in flagged)
    with Session(engine) as session:
        full = release_diff(
            session, domain="enterprise", from_version="17.1", to_version="18.1", with_text=True
        )
    first = full.techniques.description_changed[0]
    assert first.id == flagged[0].id
    assert first.old == raw("17.1").techniques[first.id]["description"]
    assert first.new == raw("18.1").techniques[first.id]["description"]


def test_unknown_release_is_not_found(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(NotFound, match=r"enterprise 15\.1"):
        release_diff(session, domain="enterprise", from_version="15.1", to_version="18.1")


# ---- impact on catalogs --------------------------------------------------------------------


def test_legacy_catalog_goes_stale_with_17_and_stays_stale(engine: Engine) -> None:
    d17 = diff_of(engine, "16.1", "17.1")
    [impact] = d17.catalogs
    rows = {(s.rule_id, s.stale_id): s for s in impact.stale}
    assert sorted(rows) == [("R-1", "T1574.002"), ("R-2", "T1086"), ("R-3", "T1574.002")]
    side = rows[("R-1", "T1574.002")]
    assert (side.status, side.suggested, side.changed_in_this_diff) == (
        "revoked",
        "T1574.001",
        True,
    )
    assert side.already_resolved is False  # the catalog was validated against 16.1
    ps = rows[("R-2", "T1086")]
    assert (ps.suggested, ps.changed_in_this_diff, ps.already_resolved) == (
        "T1059.001",
        False,
        True,
    )
    assert impact.rules == 5 and impact.stale_rules == 3 and impact.with_suggestion == 3
    # coverage: T1574.002 is covered on 16.1 and not a live technique of 17.1
    assert impact.coverage_before.total == len(rawdata.active_techniques(E.format("16.1")))
    assert impact.coverage_after.total == len(rawdata.active_techniques(E.format("17.1")))
    assert (impact.coverage_before.covered, impact.coverage_after.covered) == (2, 1)
    de = next(g for g in impact.by_tactic if g.tactic == "defense-evasion")
    assert de.before is not None and de.after is not None
    assert (de.before.covered, de.after.covered) == (1, 0)

    [later] = diff_of(engine, "17.1", "18.1").catalogs
    again = {(s.rule_id, s.stale_id): s for s in later.stale}
    assert again[("R-1", "T1574.002")].suggested == "T1574.001"
    assert again[("R-1", "T1574.002")].changed_in_this_diff is False


def sigma_rules_naming(technique: str) -> set[str]:
    with gzip.open(CATALOG_DIR / "sigma.normalized.json.gz", "rt", encoding="utf-8") as fh:
        records = json.load(fh)
    return {r["id"] for r in records if technique.lower() in {t.lower() for t in r["techniques"]}}


def test_sigma_rules_on_revoked_ids_are_stale_with_the_replacement(engine: Engine) -> None:
    [impact] = diff_of(engine, "17.1", "18.1", ("sigma",)).catalogs
    t1086 = [s for s in impact.stale if s.stale_id == "T1086"]
    assert {s.rule_id for s in t1086} == sigma_rules_naming("T1086") != set()
    want = final(raw("18.1"), "T1086")
    assert want == "T1059.001"
    assert all(s.suggested == want and s.already_resolved for s in t1086)
    assert all(not s.changed_in_this_diff for s in t1086)
    # no shared Sigma rule names T1574.002 (hence the legacy catalog above)
    assert sigma_rules_naming("T1574.002") == set()
    # the ATT&CK-19 ids this Sigma snapshot uses are unknown to both releases: not this diff's
    assert not [s for s in impact.stale if s.stale_id.startswith("T1685")]


def test_default_catalogs_are_those_of_the_domain(engine: Engine) -> None:
    with Session(engine) as session:
        d = release_diff(session, domain="enterprise", from_version="17.1", to_version="18.1")
    assert [c.catalog for c in d.catalogs] == [
        "legacy16",
        "maxpatrol-siem",
        "open-xp-rules",
        "sigma",
        "sigma-attack18",
    ]
    with Session(engine) as session, pytest.raises(NotFound, match="nope"):
        release_diff(
            session, domain="enterprise", from_version="17.1", to_version="18.1", catalogs=["nope"]
        )


# ---- the pure diff on hand-made objects ------------------------------------------------------


@dataclass
class Obj:
    stix_id: str
    kind: str
    attack_id: str | None
    name: str
    description: str = ""
    revoked: bool = False
    deprecated: bool = False
    platforms: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def tech(sid: str, tid: str, *, sub: bool = False, **kw: Any) -> Obj:
    return Obj(sid, "technique", tid, tid, data={"is_subtechnique": sub}, **kw)


def view(version: str, objs: list[Obj], rels: list[tuple[str, str, str]]) -> ReleaseView:
    return build_view(
        domain="enterprise", version=version, detection_model="x", objects=objs, relationships=rels
    )


def test_subtechnique_changes_and_removed_ids() -> None:
    before = view(
        "1.0",
        [tech("a", "T1"), tech("b", "T2"), tech("c", "T3", sub=True), tech("d", "T9")],
        [("subtechnique-of", "c", "a")],
    )
    after = view(
        "2.0",
        [tech("a", "T1"), tech("b", "T2", sub=True), tech("c", "T3", sub=True), tech("e", "T4")],
        [("subtechnique-of", "b", "a"), ("subtechnique-of", "c", "e")],
    )
    d = diff_releases(before, after)
    assert [
        (x.id, x.change, x.old_parent, x.new_parent) for x in d.techniques.subtechnique_changed
    ] == [
        ("T2", "became_subtechnique", None, "T1"),
        ("T3", "parent_changed", "T1", "T4"),
    ]
    stale = stale_mappings([Row("r", "", "t9", "T9", "T9")], before, after)
    assert [(s.stale_id, s.status, s.suggested) for s in stale] == [("T9", "removed", None)]


def test_revoked_chain_ending_in_a_deprecated_technique_has_no_suggestion() -> None:
    objs = [
        tech("a", "T1", revoked=True),
        tech("b", "T2", revoked=True),
        tech("c", "T3", deprecated=True),
    ]
    after = view("2.0", objs, [("revoked-by", "a", "b"), ("revoked-by", "b", "c")])
    before = view("1.0", [tech("a", "T1")], [])
    d = diff_releases(before, after)
    [r] = [x for x in d.techniques.revoked if x.id == "T1"]
    assert (r.revoked_by, r.replacement, r.chain) == ("T2", None, ["T1", "T2", "T3"])
    [s] = stale_mappings([Row("r", "", "T1", "T1", "T1")], before, after)
    assert (s.suggested, s.chain, s.changed_in_this_diff) == (None, ["T1", "T2", "T3"], True)


# ---- API and CLI ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(db_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    s = Settings(database_url=f"sqlite:///{db_path}", environment="test")
    with TestClient(create_app(s)) as c:
        yield c


def test_api_diff(client: TestClient) -> None:
    r = client.get(
        "/api/v1/releases/diff",
        params={"domain": "enterprise", "from": "16.1", "to": "17.1", "catalog": "legacy16"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["counts"]["techniques_added"] == 24
    assert body["techniques"]["revoked"][0]["replacement"] == "T1574.001"
    assert body["techniques"]["description_changed"][0]["old"] is None
    assert [c["catalog"] for c in body["catalogs"]] == ["legacy16"]
    text = client.get(
        "/api/v1/releases/diff",
        params={"from": "17.1", "to": "18.1", "text": "true", "catalog": "legacy16"},
    ).json()
    assert text["techniques"]["description_changed"][0]["new"]
    missing = client.get("/api/v1/releases/diff", params={"from": "15.1", "to": "18.1"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = client.get("/api/v1/releases/diff", params={"from": "latest", "to": "18.1"})
    assert bad.status_code == 422
    assert client.get("/api/v1/releases/diff", params={"to": "18.1"}).status_code == 422


def test_cli_diff(db_path: Path) -> None:
    db = f"sqlite:///{db_path}"
    out = kbmap("diff", "16.1", "17.1", "--catalog", "legacy16", "--json", db=db, check=True)
    body = json.loads(out.stdout)
    assert body["counts"]["techniques_revoked"] == 1
    assert body["catalogs"][0]["stale_rules"] == 3
    shown = kbmap("diff", "17.1", "18.1", "-c", "legacy16", db=db, check=True).stdout
    assert "detection model: data-component → detection-strategy" in shown
    assert "T1497.003: Time Based Evasion → Time Based Checks" in shown
    assert "T1574.002" in shown and "T1574.001" in shown
    bad = kbmap("diff", "17.1", "99.0", db=db)
    assert bad.returncode == 1
    head, _, loaded = bad.stderr.strip().partition("; loaded: ")
    assert head == "kbmap: no ATT&CK release loaded for enterprise 99.0"
    assert {"enterprise 16.1", "enterprise 17.1", "enterprise 18.1"} <= set(loaded.split(", "))


def test_diff_on_both_backends(loaded_engine: Engine) -> None:
    """17.1 → 18.1 on the shared loaded database, SQLite and PostgreSQL (JSON read back)."""
    with Session(loaded_engine) as session:
        d = release_diff(
            session, domain="enterprise", from_version="17.1", to_version="18.1", catalogs=[]
        )
    want = expected("17.1", "18.1")
    assert d.counts == {k: len(v) for k, v in want.items()}


# ---- mobile 17.1 → 18.1: a deprecated technique made active again -----------------------------


@pytest.fixture(scope="module")
def mobile_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('mobile') / 'kbmap.sqlite'}"
    engine = make_engine(url)
    init_db(engine)
    names = ("mobile-attack-17.1.json.gz", "mobile-attack-18.1.json.gz")
    ingest_sources(engine, [attack_file(n) for n in names], limits=Limits())
    engine.dispose()
    return url


def test_a_reinstated_technique_is_not_listed_as_added(mobile_db: str) -> None:
    want = expected("17.1", "18.1", "mobile")
    assert "T1453" in want["techniques_reinstated"]  # deprecated in 17.1, same object active now
    engine = make_engine(mobile_db)
    with Session(engine) as session:
        d = release_diff(
            session, domain="mobile", from_version="17.1", to_version="18.1", catalogs=[]
        )
    engine.dispose()
    assert d.counts == {k: len(v) for k, v in want.items()}
    assert [x.id for x in d.techniques.reinstated] == want["techniques_reinstated"]
    assert [x.id for x in d.techniques.added] == want["techniques_added"]
    s = Settings(database_url=mobile_db, environment="test")
    with TestClient(create_app(s)) as c:
        api = c.get(
            "/api/v1/releases/diff", params={"domain": "mobile", "from": "17.1", "to": "18.1"}
        ).json()
        layer = c.get(
            "/api/v1/layers/diff", params={"domain": "mobile", "from": "17.1", "to": "18.1"}
        ).json()
    assert [x["id"] for x in api["techniques"]["reinstated"]] == want["techniques_reinstated"]
    entry = next(t for t in layer["techniques"] if t["techniqueID"] == "T1453")
    assert entry["comment"].endswith("active again (not active in 17.1)")
    assert {"name": "reinstated", "value": ", ".join(want["techniques_reinstated"])} in layer[
        "metadata"
    ]
    shown = kbmap("diff", "17.1", "18.1", "--domain", "mobile", db=mobile_db, check=True).stdout
    line = next(x for x in shown.splitlines() if x.startswith("reinstated"))
    assert "T1453 Abuse Accessibility Features" in line
    assert not any(x.startswith("added") and "T1453" in x for x in shown.splitlines())
