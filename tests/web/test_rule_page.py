"""The rule page (/catalogs/{name}/rules/{rule_id}), HTML errors on page paths, and where a rule
can fire. Expected values are read from the raw sigma tarball, the shipped MaxPatrol YAML and the
raw ATT&CK bundle, not from kbmap."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from fastapi.testclient import TestClient

from tests import rawdata
from tests.conftest import ROOT, catalog_file
from tests.environment.conftest import API, client_with_sample
from tests.web.dom import Node, parse

SIGMA18 = "sigma-attack18"
ENV = "Rule-page-sample"


@pytest.fixture(scope="module")
def client(
    catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The app on one copy of the catalog database, with the DeTT&CT endpoints sample imported
    as an environment (for "where it can fire")."""
    yield from client_with_sample(catalog_sqlite_file, tmp_path_factory.mktemp("rule-page"), ENV)


@lru_cache(maxsize=2)
def raw_rules(file: str) -> dict[str, dict[str, Any]]:
    """Rule id → the rule's YAML, read straight from a shared sigma tarball."""
    out: dict[str, dict[str, Any]] = {}
    with tarfile.open(catalog_file(file)) as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.endswith((".yml", ".yaml")):
                fh = tar.extractfile(m)
                assert fh is not None
                doc: dict[str, Any] = {}  # a sigma collection: the documents' fields merged
                for part in yaml.safe_load_all(io.TextIOWrapper(fh, encoding="utf-8")):
                    for key, value in (part or {}).items():
                        doc.setdefault(key, value)
                if doc.get("id"):
                    out[str(doc["id"])] = doc
    return out


def technique_tags(doc: dict[str, Any]) -> list[str]:
    return [t for t in doc.get("tags") or [] if t.lower().startswith("attack.t")]


def html(client: TestClient, url: str, status: int = 200) -> Node:
    r = client.get(url)
    assert r.status_code == status, r.text[:800]
    assert r.headers["content-type"].startswith("text/html")
    return parse(r.text)


def rule_url(catalog: str, rule_id: str) -> str:
    return f"/catalogs/{catalog}/rules/{quote(rule_id, safe='')}"


def mapping_rows(doc: Node) -> list[dict[str, str]]:
    return [n.attrs for n in doc.select("tr", "mapping")]


def test_sigma_rule_page_shows_the_raw_rule(client: TestClient) -> None:
    raw = raw_rules("sigma-attack18-rules.tar.gz")
    rid = sorted(
        i
        for i, d in raw.items()
        if len(technique_tags(d)) >= 2 and d.get("status") == "stable" and d.get("description")
    )[0]
    want = raw[rid]
    doc = html(client, rule_url(SIGMA18, rid))
    assert doc.by_id("rule-title").text == " ".join(want["title"].split())
    assert doc.by_id("rule-id").text == rid
    assert doc.by_id("rule-status").text == want["status"]
    assert " ".join(want["description"].split()) in doc.text
    written = {m["data-written"].lower() for m in mapping_rows(doc)}
    assert written == {t.lower() for t in technique_tags(want)}
    live = rawdata.active_techniques("enterprise-attack-18.1.json.gz")
    for m in mapping_rows(doc):
        tid = m["data-written"].split(".", 1)[1].upper()
        if tid in live:  # a live id maps to itself and links to its kbmap page
            assert m["data-outcome"] == "ok" and m["data-technique"] == tid
            assert doc.find_all(
                lambda n, t=tid: (
                    n.tag == "a" and n.attrs.get("href", "").startswith(f"/techniques/{t}?")
                )
            )
    for key in ("product", "service", "category"):
        if key in (want.get("logsource") or {}):
            assert f"{key}: {want['logsource'][key]}" in doc.by_id("log-sources").text
    # the rule body is shown escaped, in a <pre>
    body = doc.by_id("rule-body")
    assert body.tag == "pre"
    assert all(key in body.text for key in want["detection"])


def test_maxpatrol_rule_from_the_shipped_yaml(client: TestClient) -> None:
    shipped = yaml.safe_load((ROOT / "kb" / "catalogs" / "maxpatrol-siem.yaml").read_text())
    want = next(r for r in shipped["rules"] if r["id"] == "PT-CR-956")
    doc = html(client, "/catalogs/maxpatrol-siem/rules/PT-CR-956")
    assert doc.by_id("rule-id").text == "PT-CR-956"
    assert doc.by_id("rule-title").text == want["title"]
    assert doc.by_id("rule-name").text == want["name"]
    assert want["package"] in doc.text
    assert sorted(m["data-written"] for m in mapping_rows(doc)) == sorted(want["techniques"])
    for tid in want["techniques"]:
        hrefs = [a.attrs["href"] for a in doc.select("a") if a.text == tid]
        assert hrefs and all(h.startswith(f"/techniques/{tid}?") for h in hrefs)
    assert any(a.attrs.get("href") == "/catalogs/maxpatrol-siem" for a in doc.select("a"))


def revoked_by(bundle: str, attack_id: str) -> str:
    """The id ATT&CK's revoked-by relationship names for a revoked technique (raw bundle)."""
    old = rawdata.by_ext_id(bundle, "attack-pattern", attack_id)
    assert old.get("revoked")
    by_id = rawdata.by_stix_id(bundle)
    targets = [
        rawdata.ext_id(by_id[o["target_ref"]])
        for o in rawdata.objects(bundle)
        if o["type"] == "relationship"
        and o["relationship_type"] == "revoked-by"
        and o["source_ref"] == old["id"]
    ]
    assert len(targets) == 1
    return str(targets[0])


def test_remapped_mapping_shows_its_original_id(client: TestClient) -> None:
    bundle = "enterprise-attack-18.1.json.gz"
    revoked = {
        rawdata.ext_id(o)
        for o in rawdata.objects(bundle)
        if o["type"] == "attack-pattern" and o.get("revoked")
    }
    raw = raw_rules("sigma-attack18-rules.tar.gz")
    rid, tag = next(
        (i, t)
        for i in sorted(raw)
        for t in technique_tags(raw[i])
        if t.split(".", 1)[1].upper() in revoked
    )
    old = tag.split(".", 1)[1].upper()
    new = revoked_by(bundle, old)
    doc = html(client, rule_url(SIGMA18, rid))
    row = next(n for n in doc.select("tr", "mapping") if n.attrs["data-written"] == tag)
    assert row.attrs["data-outcome"] == "remapped"
    assert row.attrs["data-technique"] == new
    assert row.select("code", "remapped-from")[0].text == tag
    assert f"remapped from {tag} to {new}" in row.text


def test_missing_rule_is_an_html_404_naming_the_catalog(client: TestClient) -> None:
    doc = html(client, "/catalogs/maxpatrol-siem/rules/PT-CR-0", 404)
    message = doc.by_id("error-message").text
    assert "PT-CR-0" in message and "maxpatrol-siem" in message
    assert "nope" in html(client, "/catalogs/nope/rules/x", 404).by_id("error-message").text


# A `%` in an id (`pct%41`) is quoted as %25 and served right by uvicorn, but Starlette's
# TestClient decodes the path twice (httpx's decoded path, unquoted again), so it is left out here.
ODD_IDS = ("odd.rule-1_x", "with space & <b>", "slash/inside", "dots.and..more")


def test_odd_rule_ids_are_addressed_url_quoted(catalog_client: TestClient) -> None:
    body = {
        "name": "odd-ids",
        "attack": {"domain": "enterprise", "version": "18.1"},
        "rules": [
            {"id": i, "title": f"title {n}", "techniques": ["T1059"]} for n, i in enumerate(ODD_IDS)
        ],
    }
    r = catalog_client.post(
        f"{API}/catalogs",
        files={"file": ("odd.yaml", yaml.safe_dump(body).encode(), "application/yaml")},
        data={"format": "canonical"},
    )
    assert r.status_code == 201, r.text
    listing = html(catalog_client, "/catalogs/odd-ids")
    links = {
        tr.attrs["data-rule-id"]: tr.select("a")[0].attrs["href"]
        for tr in listing.select("tr", "rule")
    }
    assert set(links) == set(ODD_IDS)
    for rid, href in links.items():
        assert href == rule_url("odd-ids", rid)
        doc = html(catalog_client, href)
        assert doc.by_id("rule-id").text == " ".join(rid.split())
    raw = catalog_client.get(rule_url("odd-ids", "with space & <b>")).text
    assert "<b>" not in raw.split("<main>", 1)[1]  # escaped, as every rule text


def test_page_paths_answer_html_errors_and_the_api_keeps_json(client: TestClient) -> None:
    for url in ("/techniques/", "/nope", "/catalogs/nope", "/groups/"):
        r = client.get(url)
        assert r.status_code == 404, url
        assert r.headers["content-type"].startswith("text/html"), url
        assert parse(r.text).by_id("error-message").text
    for url in ("/api/v1/nope", "/api/v1/rules/maxpatrol-siem/PT-CR-0", "/api/v1/techniques/T9999"):
        r = client.get(url)
        assert r.status_code == 404, url
        assert r.headers["content-type"].startswith("application/json"), url
        assert r.json()["error"]["code"] == "not_found"
    r = client.post("/catalogs/sigma")
    assert r.status_code == 405 and r.headers["content-type"].startswith("text/html")
    r = client.get("/api/v1/rules", params={"limit": 0})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")


def test_where_it_can_fire_agrees_with_the_technique_page(client: TestClient) -> None:
    """Each rule of T1059.001 in sigma-attack18: the rule page's verdict in the environment is
    the one the technique page (JSON API) gives it there."""
    r = client.get(f"{API}/techniques/T1059.001", params={"catalog": SIGMA18, "environment": ENV})
    assert r.status_code == 200, r.text
    rules = [x for x in r.json()["rules"] if x["catalog"] == SIGMA18][:6]
    assert rules
    for x in rules:
        doc = html(client, rule_url(SIGMA18, x["rule_id"]))
        places = {p.attrs["data-environment"]: p for p in doc.select("tr", "place")}
        assert set(places) == {ENV}
        assert places[ENV].attrs["data-fires"] == ("yes" if x["fires"] else "no"), x
        if not x["fires"]:
            assert x["why_not"] in places[ENV].text
