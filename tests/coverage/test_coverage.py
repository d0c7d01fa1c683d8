"""Coverage and gaps on 18.1 with the shared catalogs; expectations from the raw files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_token
from app.core.config import Settings
from app.main import create_app
from tests import rawdata
from tests.catalog import rawcatalogs

E18 = "enterprise-attack-18.1.json.gz"
SIGMA18 = "sigma-attack18-rules.tar.gz"


@pytest.fixture(scope="module")
def client(catalog_sqlite_file: object) -> Iterator[TestClient]:
    s = Settings(database_url=f"sqlite:///{catalog_sqlite_file}", environment="test")
    with TestClient(create_app(s)) as c:
        yield c


def _raw_state() -> tuple[dict[str, dict], dict[str, str]]:
    techs = {rawdata.ext_id(o): o for o in rawdata.objects(E18) if o["type"] == "attack-pattern"}
    objs = rawdata.by_stix_id(E18)
    nxt = {
        rawdata.ext_id(objs[r["source_ref"]]): rawdata.ext_id(objs[r["target_ref"]])
        for r in rawdata.relationships(E18, "revoked-by")
        if r["source_ref"].startswith("attack-pattern")
    }
    return techs, nxt  # type: ignore[return-value]


def _raw_sigma_covered() -> set[str]:
    """Active 18.1 techniques that a non-deprecated, supported sigma-attack18 rule maps to."""
    techs, nxt = _raw_state()
    rules = rawcatalogs.sigma_rules(SIGMA18)
    status = rawcatalogs.sigma_status(SIGMA18)
    covered = set()
    for path, ids in rules.items():
        if status[path] in ("deprecated", "unsupported"):
            continue
        for t in ids:
            while t in techs and techs[t].get("revoked") and t in nxt:
                t = nxt[t]
            if t in techs and rawdata.active(techs[t]):
                covered.add(t)
    return covered


def test_overall_and_per_tactic_counts_for_sigma(client: TestClient) -> None:
    techs, _ = _raw_state()
    active = {t: o for t, o in techs.items() if rawdata.active(o)}
    covered = _raw_sigma_covered()
    body = client.get("/api/v1/coverage", params={"catalog": "sigma-attack18"}).json()
    assert body["all"]["total"] == len(active) == 691
    assert body["all"]["covered"] == len(covered)
    subs = {t for t, o in active.items() if o.get("x_mitre_is_subtechnique")}
    assert body["subtechniques"] == {
        "total": len(subs),
        "covered": len(covered & subs),
        "percent": round(100 * len(covered & subs) / len(subs), 1),
    }
    matrix = next(o for o in rawdata.objects(E18) if o["type"] == "x-mitre-matrix")
    objs = rawdata.by_stix_id(E18)
    expected = []
    for ref in matrix["tactic_refs"]:
        short = objs[ref]["x_mitre_shortname"]
        in_t = {
            t
            for t, o in active.items()
            if any(p["phase_name"] == short for p in o.get("kill_chain_phases", []))
        }
        expected.append((short, len(in_t), len(in_t & covered)))
    assert [(g["key"], g["total"], g["covered"]) for g in body["by_tactic"]] == expected
    tactics = client.get("/api/v1/coverage/tactics", params={"catalog": "sigma-attack18"}).json()
    assert tactics == body["by_tactic"]


def _group_techniques(gid: str) -> set[str]:
    objs = rawdata.by_stix_id(E18)
    g = rawdata.by_ext_id(E18, "intrusion-set", gid)["id"]
    campaigns = {
        r["source_ref"] for r in rawdata.relationships(E18, "attributed-to") if r["target_ref"] == g
    }
    users = {g} | campaigns
    return {
        rawdata.ext_id(objs[r["target_ref"]]) or ""
        for r in rawdata.relationships(E18, "uses")
        if r["source_ref"] in users
        and r["target_ref"].startswith("attack-pattern")
        and rawdata.active(objs[r["target_ref"]])
    }


def test_threat_informed_gaps_for_a_group(client: TestClient) -> None:
    used = _group_techniques("G0016")
    covered = _raw_sigma_covered()
    r = client.get(
        "/api/v1/gaps", params={"catalog": "sigma-attack18", "groups": "G0016", "limit": 1000}
    )
    body = r.json()
    assert {g["id"] for g in body["items"]} == used - covered
    assert body["total"] == len(used - covered)
    assert all(g["groups"] == ["G0016"] for g in body["items"])
    priorities = [g["priority"] for g in body["items"]]
    assert priorities == sorted(priorities, reverse=True)
    rows = client.get(
        "/api/v1/coverage/techniques",
        params={"catalog": "sigma-attack18", "groups": "G0016", "sort": "uncovered", "limit": 1000},
    ).json()
    assert {x["id"] for x in rows["items"]} == used
    n_unc = len(used - covered)
    assert [x["covered"] for x in rows["items"]] == [False] * n_unc + [True] * (len(used) - n_unc)


def test_gap_entries_explain_themselves(client: TestClient) -> None:
    body = client.get(
        "/api/v1/gaps",
        params={
            "catalog": "maxpatrol-siem",
            "collected": "Process Creation,Command Execution",
            "limit": 50,
        },
    ).json()
    first = body["items"][0]
    assert first["parts"]["telemetry"] == "cheap"
    assert set(first["collected_data_components"]) <= {"Process Creation", "Command Execution"}
    objs = rawdata.by_stix_id(E18)
    for gap in body["items"][:10]:
        tech = rawdata.by_ext_id(E18, "attack-pattern", gap["id"])["id"]
        expected = sorted(
            rawdata.ext_id(objs[r["source_ref"]]) or ""
            for r in rawdata.relationships(E18, "mitigates")
            if r["target_ref"] == tech and rawdata.active(objs[r["source_ref"]])
        )
        assert [m["id"] for m in gap["mitigations"]] == expected
    blind = [g for g in body["items"] if g["parts"]["telemetry"] == "blind"]
    assert all(not g["collected_data_components"] for g in blind)
    bad = client.get("/api/v1/gaps", params={"collected": "Telepathy"})
    assert bad.status_code == 422 and "Telepathy".lower() in bad.json()["error"]["message"].lower()


def test_revoked_mapping_counts_for_its_replacement(client: TestClient) -> None:
    raw = rawcatalogs.sigma_rules("sigma-rules.tar.gz")
    status = rawcatalogs.sigma_status("sigma-rules.tar.gz")
    t1086 = [p for p, ids in raw.items() if "T1086" in ids]
    row = next(
        r
        for r in client.get(
            "/api/v1/coverage/techniques", params={"catalog": "sigma", "limit": 1000}
        ).json()["items"]
        if r["id"] == "T1059.001"
    )
    assert row["remapped_rules"] == len(t1086) > 0
    assert row["covered"] is True
    page = client.get("/api/v1/techniques/T1059.001", params={"catalog": "sigma"}).json()
    remapped = [r for r in page["rules"] if r["how"] == "remapped"]
    assert len(remapped) == len(t1086)
    assert {r["mapped_as"] for r in remapped} == {"attack.t1086"}
    assert all(status[p] is not None for p in t1086)


def test_own_catalog_compared_with_sigma(catalog_settings: Settings) -> None:
    covered = _raw_sigma_covered()
    mine = ["T1550.001", "T1059.001", "T1003.001", "T1685"]  # T1685 is ATT&CK 19: unknown in 18.1
    doc = "name: mp-mine\nrules:\n" + "".join(
        f"  - id: PT-CR-{i}\n    techniques: [{t}]\n" for i, t in enumerate(mine)
    )
    with TestClient(create_app(catalog_settings)) as c:
        _, token = create_token(c.app.state.engine, catalog_settings, name="w", scopes=["write"])
        r = c.post(
            "/api/v1/catalogs",
            files={"file": ("mp.yaml", doc.encode())},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 201, r.text
        body = c.get(
            "/api/v1/coverage/compare", params={"a": "mp-mine", "b": "sigma-attack18"}
        ).json()
    mine_known = {t for t in mine if t != "T1685"}
    assert set(body["only_a"]) == mine_known - covered
    assert set(body["both"]) == mine_known & covered
    assert set(body["only_b"]) == covered - mine_known
    assert len(body["neither"]) == 691 - len(covered | mine_known)
    assert sum(
        r["both"] + r["only_a"] + r["only_b"] + r["neither"] for r in body["by_tactic"]
    ) == sum(
        len(o.get("kill_chain_phases", [])) for t, o in _raw_state()[0].items() if rawdata.active(o)
    )


def test_data_component_view(client: TestClient) -> None:
    rows = client.get(
        "/api/v1/coverage/data-components", params={"catalog": "sigma-attack18"}
    ).json()
    pc = next(r for r in rows if r["name"] == "Process Creation")
    assert pc["covered"] + pc["uncovered"] == pc["techniques"]
    assert len(pc["uncovered_techniques"]) == pc["uncovered"]
    assert not set(pc["uncovered_techniques"]) & _raw_sigma_covered()


def test_pins_decide_the_tactic_and_a_wrong_pin_falls_back(
    catalog_settings: Settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """T1550.001 sits under defense-evasion and lateral-movement; a pin narrows it to one, a pin
    to a tactic it does not have (warned at import) counts for its own tactics."""
    from app.catalog import service as catalog_service
    from app.catalog.source import open_source
    from app.core.db import make_engine

    f = tmp_path / "pins.yaml"
    f.write_text(
        "name: pins\nrules:\n  - id: A\n    techniques: [T1550.001@lateral-movement]\n"
        "  - id: B\n    techniques: [T1059.001@impact]\n"
    )
    engine = make_engine(catalog_settings.database_url)
    catalog_service.import_catalog(
        engine, catalog_settings, source=open_source(f, catalog_settings.limits)
    )
    with TestClient(create_app(catalog_settings)) as c:
        rows = {
            r["id"]: r
            for r in c.get(
                "/api/v1/coverage/techniques", params={"catalog": "pins", "covered": "true"}
            ).json()["items"]
        }
        tactics = {
            t["key"]: t["covered"]
            for t in c.get("/api/v1/coverage/tactics", params={"catalog": "pins"}).json()
        }
    assert set(rows) == {"T1550.001", "T1059.001"}
    assert rows["T1550.001"]["tactic_scores"]["lateral-movement"] > 0
    assert rows["T1550.001"]["tactic_scores"]["defense-evasion"] == 0
    assert rows["T1059.001"]["tactic_scores"] == {}
    assert (
        tactics["lateral-movement"],
        tactics["defense-evasion"],
        tactics["execution"],
        tactics["impact"],
    ) == (1, 0, 1, 0)
