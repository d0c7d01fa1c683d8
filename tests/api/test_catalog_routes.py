"""Catalog and rule routes: multipart upload, reports, rules filters, export, errors."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_token
from app.core.config import Settings
from app.main import create_app
from tests.catalog import rawcatalogs


@pytest.fixture
def client(catalog_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(catalog_settings)) as c:
        _, token = create_token(
            c.app.state.engine, catalog_settings, name="test-writer", scopes=["write"]
        )
        c.headers["Authorization"] = f"Bearer {token}"  # uploads and deletes need a write token
        yield c


def test_technique_page_lists_the_seed_rule(client: TestClient) -> None:
    body = client.get("/api/v1/techniques/T1550.001", params={"catalog": "maxpatrol-siem"}).json()
    assert [(r["package"], r["rule_id"], r["name"], r["title"]) for r in body["rules"]] == [
        (
            "mitre_attck_lateral_movement",
            "PT-CR-956",
            "Disable_Smartcard",
            "Smart Card is disabled in the registry",
        )
    ]
    assert body["detection_strategies"][0]["id"] == "DET0185"


def test_upload_report_and_rules(client: TestClient) -> None:
    doc = b"name: team\nrules:\n  - id: T-1\n    title: token use\n    techniques: [T1527, T1550.001@lateral-movement]\n"
    r = client.post("/api/v1/catalogs", files={"file": ("team.yaml", doc)})
    assert r.status_code == 201, r.text
    report = r.json()["report"]
    assert report["outcomes"]["remapped"] == 1 and report["outcomes"]["ok"] == 1
    rule = client.get("/api/v1/rules/team/T-1").json()
    assert sorted((m["written"], m["technique"], m["outcome"]) for m in rule["mappings"]) == [
        ("T1527", "T1550.001", "remapped"),
        ("T1550.001@lateral-movement", "T1550.001", "ok"),
    ]
    page = client.get("/api/v1/techniques/T1550.001", params={"catalog": "team"}).json()
    assert [r["rule_id"] for r in page["rules"]] == ["T-1"]
    assert client.delete("/api/v1/catalogs/team").status_code == 204
    assert client.get("/api/v1/catalogs/team").status_code == 404


def test_rules_filter_by_technique_and_subtechniques(client: TestClient) -> None:
    raw = rawcatalogs.xp_rules()
    direct = client.get(
        "/api/v1/rules", params={"catalog": "open-xp-rules", "technique": "T1003"}
    ).json()
    assert direct["total"] == sum(1 for ts in raw.values() if "T1003" in ts)
    deep = client.get(
        "/api/v1/rules",
        params={"catalog": "open-xp-rules", "technique": "T1003", "subtechniques": "true"},
    ).json()
    assert deep["total"] == sum(
        1 for ts in raw.values() if any(t == "T1003" or t.startswith("T1003.") for t in ts)
    )


def test_bad_uploads_are_4xx_and_change_nothing(client: TestClient) -> None:
    before = client.get("/api/v1/catalogs").json()
    bad_yaml = client.post("/api/v1/catalogs", files={"file": ("x.yaml", b"name: x\nrules: [\n")})
    assert bad_yaml.status_code == 422
    assert bad_yaml.json()["error"]["location"]["file"] == "x.yaml"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.yml")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"a: 1"[:3]))
    evil = client.post("/api/v1/catalogs", files={"file": ("evil.tar.gz", buf.getvalue())})
    assert evil.status_code == 422 and "escapes the archive" in evil.json()["error"]["message"]
    unknown = client.post(
        "/api/v1/catalogs",
        files={"file": ("x.yaml", b"name: x\nrules: []\n")},
        data={"format": "nope"},
    )
    assert (
        unknown.status_code == 422
        and "unknown catalog format" in unknown.json()["error"]["message"]
    )
    assert client.get("/api/v1/catalogs").json() == before


def test_export_download(client: TestClient) -> None:
    r = client.get("/api/v1/catalogs/maxpatrol-siem/export", params={"format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-disposition"] == 'attachment; filename="maxpatrol-siem.csv"'
    assert "PT-CR-956" in r.text and "T1550.001" in r.text
