"""The ATT&CK API over HTTP semantics (TestClient on a copy of the loaded database)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests import rawdata


@pytest.fixture
def client(loaded_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(loaded_settings)) as c:
        yield c


def test_technique_page(client: TestClient) -> None:
    body = client.get("/api/v1/techniques/t1550.001", params={"version": "17.1"}).json()
    assert body["id"] == "T1550.001" and body["version"] == "17.1"
    assert [m["id"] for m in body["mitigations"]] == ["M1013", "M1021", "M1036", "M1041", "M1047"]
    assert body["data_components"][0]["data_source"] == {"id": "DS0006", "name": "Web Credential"}
    assert body["rules"] == []
    new = client.get("/api/v1/techniques/T1550.001").json()
    assert new["version"] == "18.1"
    assert new["detection_strategies"][0]["id"] == "DET0185"


def test_unknown_id_is_a_json_404(client: TestClient) -> None:
    r = client.get("/api/v1/techniques/T0000.999")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert "T0000.999" in r.json()["error"]["message"]
    r = client.get("/api/v1/techniques/T1550.001", params={"version": "99.0"})
    assert r.status_code == 404 and "99.0" in r.json()["error"]["message"]


def test_bad_parameters_are_422_with_the_field(client: TestClient) -> None:
    r = client.get("/api/v1/techniques", params={"version": "latest"})
    assert r.status_code == 422
    assert r.json()["error"]["location"]["field"] == "query.version"
    r = client.get("/api/v1/techniques", params={"domain": "pre"})
    assert r.status_code == 422 and "unknown ATT&CK domain" in r.json()["error"]["message"]


def test_releases_mark_the_default(client: TestClient) -> None:
    rows = client.get("/api/v1/releases").json()
    defaults = {(r["domain"], r["version"]) for r in rows if r["is_default"]}
    assert defaults == {("enterprise", "18.1"), ("mobile", "18.1"), ("ics", "18.1")}


def test_techniques_paging_caps_and_counts(client: TestClient) -> None:
    r = client.get(
        "/api/v1/techniques", params={"limit": 10, "offset": 5, "domain": "mobile"}
    ).json()
    assert r["total"] == len(rawdata.active_techniques("mobile-attack-18.1.json.gz"))
    assert (len(r["items"]), r["limit"], r["offset"]) == (10, 10, 5)
    big = client.get("/api/v1/techniques", params={"limit": 100000}).json()
    assert big["limit"] == 1000


def test_object_routes(client: TestClient) -> None:
    assert client.get("/api/v1/groups/G0016").json()["name"] == "APT29"
    dets = client.get("/api/v1/detection-strategies/DET0185").json()
    assert [a["id"] for a in dets["related"]["analytics"]] == [
        "AN0526",
        "AN0527",
        "AN0528",
        "AN0529",
        "AN0530",
    ]
    tactics = client.get("/api/v1/tactics", params={"domain": "ics"}).json()
    assert tactics[0]["shortname"] == "initial-access"
    ds = client.get(
        "/api/v1/data-sources", params={"version": "17.1", "q": "web credential"}
    ).json()
    assert [d["id"] for d in ds["items"]] == ["DS0006"]


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["releases"] == 4


def test_readiness_without_release(settings: Settings) -> None:
    with TestClient(create_app(settings)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "no ATT&CK release loaded"


def _groups_via_campaigns(name: str) -> dict[str, dict[str, str]]:
    """software id → {group id: "via campaign C…"} from the raw bundle: a live campaign uses the
    software and is attributed to a live group that does not use it itself."""
    objs = rawdata.by_stix_id(name)
    uses = [(r["source_ref"], r["target_ref"]) for r in rawdata.relationships(name, "uses")]
    attributed = rawdata.relationships(name, "attributed-to")
    direct = set(uses)
    out: dict[str, dict[str, str]] = {}
    for camp, soft in uses:
        if not camp.startswith("campaign--") or not soft.startswith(("malware--", "tool--")):
            continue
        for r in attributed:
            group = r["target_ref"]
            if r["source_ref"] != camp or (group, soft) in direct:
                continue
            if all(rawdata.active(objs[x]) for x in (camp, soft, group)):
                by_group = out.setdefault(rawdata.ext_id(objs[soft]) or "", {})
                by_group[rawdata.ext_id(objs[group]) or ""] = (
                    f"via campaign {rawdata.ext_id(objs[camp])}"
                )
    return out


def test_software_lists_groups_that_use_it_through_campaigns(client: TestClient) -> None:
    expected = _groups_via_campaigns("enterprise-attack-18.1.json.gz")
    assert expected  # the release has such software (S0095 through C0038, among others)
    for software_id, via in sorted(expected.items()):
        body = client.get(f"/api/v1/software/{software_id}").json()
        groups = {g["id"]: g["description"] for g in body["related"]["groups"]}
        assert {g: groups.get(g) for g in via} == via, software_id
