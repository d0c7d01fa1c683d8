"""Catalog and rule routes: multipart upload, reports, rules filters, export, errors."""

from __future__ import annotations

import io
import tarfile

from fastapi.testclient import TestClient

from tests.catalog import rawcatalogs


def test_technique_page_lists_the_seed_rule(catalog_client: TestClient) -> None:
    body = catalog_client.get(
        "/api/v1/techniques/T1550.001", params={"catalog": "maxpatrol-siem"}
    ).json()
    assert [(r["package"], r["rule_id"], r["name"], r["title"]) for r in body["rules"]] == [
        (
            "mitre_attck_lateral_movement",
            "PT-CR-956",
            "Disable_Smartcard",
            "Smart Card is disabled in the registry",
        )
    ]
    assert body["detection_strategies"][0]["id"] == "DET0185"


def test_upload_report_and_rules(catalog_client: TestClient) -> None:
    doc = b"name: team\nrules:\n  - id: T-1\n    title: token use\n    techniques: [T1527, T1550.001@lateral-movement]\n"
    r = catalog_client.post("/api/v1/catalogs", files={"file": ("team.yaml", doc)})
    assert r.status_code == 201, r.text
    report = r.json()["report"]
    assert report["outcomes"]["remapped"] == 1 and report["outcomes"]["ok"] == 1
    rule = catalog_client.get("/api/v1/rules/team/T-1").json()
    assert sorted((m["written"], m["technique"], m["outcome"]) for m in rule["mappings"]) == [
        ("T1527", "T1550.001", "remapped"),
        ("T1550.001@lateral-movement", "T1550.001", "ok"),
    ]
    page = catalog_client.get("/api/v1/techniques/T1550.001", params={"catalog": "team"}).json()
    assert [r["rule_id"] for r in page["rules"]] == ["T-1"]
    assert catalog_client.delete("/api/v1/catalogs/team").status_code == 204
    assert catalog_client.get("/api/v1/catalogs/team").status_code == 404


def test_rules_filter_by_technique_and_subtechniques(catalog_client: TestClient) -> None:
    raw = rawcatalogs.xp_rules()
    direct = catalog_client.get(
        "/api/v1/rules", params={"catalog": "open-xp-rules", "technique": "T1003"}
    ).json()
    assert direct["total"] == sum(1 for ts in raw.values() if "T1003" in ts)
    deep = catalog_client.get(
        "/api/v1/rules",
        params={"catalog": "open-xp-rules", "technique": "T1003", "subtechniques": "true"},
    ).json()
    assert deep["total"] == sum(
        1 for ts in raw.values() if any(t == "T1003" or t.startswith("T1003.") for t in ts)
    )


def test_bad_uploads_are_4xx_and_change_nothing(catalog_client: TestClient) -> None:
    before = catalog_client.get("/api/v1/catalogs").json()
    bad_yaml = catalog_client.post(
        "/api/v1/catalogs", files={"file": ("x.yaml", b"name: x\nrules: [\n")}
    )
    assert bad_yaml.status_code == 422
    assert bad_yaml.json()["error"]["location"]["file"] == "x.yaml"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.yml")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"a: 1"[:3]))
    evil = catalog_client.post("/api/v1/catalogs", files={"file": ("evil.tar.gz", buf.getvalue())})
    assert evil.status_code == 422 and "escapes the archive" in evil.json()["error"]["message"]
    unknown = catalog_client.post(
        "/api/v1/catalogs",
        files={"file": ("x.yaml", b"name: x\nrules: []\n")},
        data={"format": "nope"},
    )
    assert (
        unknown.status_code == 422
        and "unknown catalog format" in unknown.json()["error"]["message"]
    )
    assert catalog_client.get("/api/v1/catalogs").json() == before


def test_export_download(catalog_client: TestClient) -> None:
    r = catalog_client.get("/api/v1/catalogs/maxpatrol-siem/export", params={"format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-disposition"] == 'attachment; filename="maxpatrol-siem.csv"'
    assert "PT-CR-956" in r.text and "T1550.001" in r.text


def test_a_domain_that_contradicts_the_upload_is_a_422(catalog_client: TestClient) -> None:
    before = catalog_client.get("/api/v1/catalogs").json()
    doc = b'name: ent\nattack: {domain: enterprise, version: "18.1"}\nrules:\n  - id: A\n'
    r = catalog_client.post(
        "/api/v1/catalogs", files={"file": ("ent.yaml", doc)}, data={"domain": "ics"}
    )
    assert r.status_code == 422
    assert r.json()["error"]["message"] == (
        "domain ics contradicts the catalog, which declares ATT&CK enterprise"
    )
    assert catalog_client.get("/api/v1/catalogs").json() == before


def test_one_rule_carries_its_body_and_extra_fields(catalog_client: TestClient) -> None:
    """`GET /rules/{catalog}/{id}` gives the rule in its own language, byte for byte as the raw
    tarball holds it (Sigma: the file; XP: the folder's rule.co); lists leave bodies out."""
    wanted = {"sigma": "sigma-rules.tar.gz", "open-xp-rules": "open-xp-rules-rules.tar.gz"}
    for catalog, tarball in wanted.items():
        listed = catalog_client.get("/api/v1/rules", params={"catalog": catalog, "limit": 3})
        items = listed.json()["items"]
        assert len(items) == 3 and all("body" not in r and "extra" not in r for r in items)
        for item in items:
            full = catalog_client.get(f"/api/v1/rules/{catalog}/{item['rule_id']}").json()
            member = full["path"] if catalog == "sigma" else f"{full['path']}/rule.co"
            with tarfile.open(rawcatalogs.CATALOG_DIR / tarball) as tar:
                raw = tar.extractfile(member).read().decode("utf-8")  # type: ignore[union-attr]
            assert full["body"] == raw, member
            assert isinstance(full["extra"], dict) and full["extra"], member
    shipped = catalog_client.get("/api/v1/rules/maxpatrol-siem/PT-CR-956").json()
    assert shipped["body"] is None and shipped["extra"] == {}  # the seed list has no rule text
