"""Layers on ATT&CK 18.1 with the shared catalogs, checked against the coverage API and the raw
bundles (tests/rawdata.py), the layer JSON Schema and mitreattack-python's own layer loader."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openpyxl
import pytest
from fastapi.testclient import TestClient
from mitreattack.navlayers import Layer as MitreLayer

from app.core.config import Settings
from app.layer.kinds.coverage import COVERAGE_GRADIENT
from app.layer.kinds.threat import COVERED, UNCOVERED, UNUSED
from app.main import create_app
from tests import rawdata

E18 = "enterprise-attack-18.1.json.gz"
SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "kb/schemas/navigator-layer-4.5.schema.json").read_text()
)
SVG = {"s": "http://www.w3.org/2000/svg"}
KINDS: list[tuple[str, dict[str, Any]]] = [
    ("coverage", {}),
    ("coverage", {"platform": "windows", "catalog": "sigma"}),
    ("gaps", {"collected": "Process Creation,Command Execution", "min_score": 40}),
    ("threat", {"groups": "G0016,S0002"}),
    ("telemetry", {"collected": "Process Creation"}),
    ("compare", {"a": "sigma", "b": "open-xp-rules"}),
    ("diff", {"from": "17.1"}),
    ("gaps", {"domain": "ics"}),
    ("threat", {"domain": "mobile", "groups": "G0112"}),
]


@pytest.fixture(scope="module")
def client(catalog_sqlite_file: Path) -> Iterator[TestClient]:
    s = Settings(database_url=f"sqlite:///{catalog_sqlite_file}", environment="test")
    with TestClient(create_app(s)) as c:
        yield c


def layer(client: TestClient, kind: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"/api/v1/layers/{kind}", params={"version": "18.1", **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def rows(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    r = client.get(
        "/api/v1/coverage/techniques", params={"version": "18.1", "limit": 1000, **params}
    )
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == len(page["items"])
    items: list[dict[str, Any]] = page["items"]
    return items


def annotated(d: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("score", "color", "comment", "metadata", "links")
    return [e for e in d["techniques"] if e.get("enabled", True) and any(k in e for k in keys)]


def raw_platforms(name: str) -> list[str]:
    found = {
        p
        for o in rawdata.objects(name)
        if o["type"] == "attack-pattern" and rawdata.active(o)
        for p in o.get("x_mitre_platforms", [])
    }
    return sorted(found, key=str.lower)


def empty_strings(value: Any) -> int:
    if value == "":
        return 1
    if isinstance(value, dict):
        return sum(empty_strings(v) for v in value.values())
    if isinstance(value, list):
        return sum(empty_strings(v) for v in value)
    return 0


def test_coverage_layer_has_one_entry_per_covered_technique_and_tactic(client: TestClient) -> None:
    expected = {}
    for r in rows(client):
        if r["tactic_scores"]:
            expected |= {(r["id"], t): s for t, s in r["tactic_scores"].items() if s > 0}
        elif r["covered"]:
            expected[(r["id"], None)] = r["score"]
    d = layer(client, "coverage")
    scored = [e for e in d["techniques"] if "score" in e]
    got = {(e["techniqueID"], e.get("tactic")): e["score"] for e in scored}
    assert len(scored) == len(got)  # one entry per pair
    assert got == expected
    assert len(got) > 300
    # the rest are bare "open my sub-techniques" entries for uncovered parents
    rest = [e for e in d["techniques"] if "score" not in e]
    assert all(set(e) == {"techniqueID", "showSubtechniques"} for e in rest)
    covered_subs = {t.split(".")[0] for t, _ in got if "." in t}
    assert {e["techniqueID"] for e in d["techniques"] if e.get("showSubtechniques")} == covered_subs


def test_gaps_layer_lists_every_uncovered_active_technique(client: TestClient) -> None:
    covered = {r["id"] for r in rows(client) if r["covered"]}
    uncovered = rawdata.active_techniques(E18) - covered
    d = layer(client, "gaps")
    entries = annotated(d)
    assert len(entries) == len(uncovered) == len({e["techniqueID"] for e in entries})
    assert {e["techniqueID"] for e in entries} == uncovered
    gaps = client.get("/api/v1/gaps", params={"version": "18.1", "limit": 1000}).json()["items"]
    assert {e["techniqueID"]: e["score"] for e in entries} == {g["id"]: g["priority"] for g in gaps}


def raw_group_techniques(name: str, group_id: str) -> set[str]:
    """Techniques a group uses directly or through campaigns attributed to it."""
    objs = rawdata.by_stix_id(name)
    group = rawdata.by_ext_id(name, "intrusion-set", group_id)

    def live(ref: str) -> bool:
        return ref in objs and rawdata.active(objs[ref])

    users = {group["id"]} | {
        r["source_ref"]
        for r in rawdata.relationships(name, "attributed-to")
        if r["target_ref"] == group["id"] and live(r["source_ref"])
    }
    return {
        rawdata.ext_id(objs[r["target_ref"]]) or ""
        for r in rawdata.relationships(name, "uses")
        if r["source_ref"] in users
        and r["target_ref"].startswith("attack-pattern--")
        and live(r["target_ref"])
    }


def test_threat_layer_for_g0016_matches_the_raw_bundle(client: TestClient) -> None:
    expected = raw_group_techniques(E18, "G0016")
    assert len(expected) > 50
    d = layer(client, "threat", groups="G0016")
    used = annotated(d)
    assert {e["techniqueID"] for e in used} == expected
    covered = {r["id"]: r["covered"] for r in rows(client, groups="G0016")}
    assert set(covered) == expected
    for e in used:
        assert e["color"] == (COVERED if covered[e["techniqueID"]] else UNCOVERED), e
        assert "G0016 APT29" in e["comment"]
    disabled = {e["techniqueID"] for e in d["techniques"] if e.get("enabled") is False}
    assert disabled == rawdata.active_techniques(E18) - expected
    assert {"label": "not used (disabled)", "color": UNUSED} in d["legendItems"]


@pytest.mark.parametrize(
    ("kind", "params"), KINDS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(KINDS)]
)
def test_every_kind_is_a_valid_layer_navigator_tools_load_quietly(
    client: TestClient, kind: str, params: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    d = layer(client, kind, **params)
    jsonschema.validate(d, SCHEMA)
    assert empty_strings(d) == 0
    domain = params.get("domain", "enterprise")
    bundle = f"{domain}-attack-18.1.json.gz"
    assert d["domain"] == f"{domain}-attack"
    assert d["versions"] == {"attack": "18", "navigator": "5.1.0", "layer": "4.5"}
    platforms = raw_platforms(bundle)
    want = (
        [p for p in platforms if p.lower() == params["platform"]]
        if "platform" in params
        else platforms
    )
    assert d["filters"]["platforms"] == want
    active = rawdata.active_techniques(bundle)
    ids = {e["techniqueID"] for e in d["techniques"]}
    assert ids <= active, sorted(ids - active)  # never a revoked or deprecated id
    assert d["techniques"] == sorted(
        d["techniques"], key=lambda e: (e["techniqueID"], e.get("tactic", ""))
    )
    assert d["legendItems"] and all(x["label"] and x["color"] for x in d["legendItems"])
    opened = {e["techniqueID"] for e in d["techniques"] if e.get("showSubtechniques")}
    assert {
        e["techniqueID"].split(".")[0] for e in annotated(d) if "." in e["techniqueID"]
    } <= opened
    capsys.readouterr()
    loaded = MitreLayer()
    loaded.from_dict(d)
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", "")
    assert loaded.to_dict() is not None


def test_split_by_platform_is_one_file_of_layers(client: TestClient) -> None:
    r = client.get(
        "/api/v1/layers/gaps",
        params={"version": "18.1", "split": "platform", "platform": ["Linux", "macOS"]},
    )
    assert r.status_code == 200
    assert (
        r.headers["content-disposition"] == 'attachment; filename="kbmap-gaps-enterprise-18.1.json"'
    )
    layers = r.json()
    jsonschema.validate(layers, SCHEMA)
    assert [x["filters"]["platforms"] for x in layers] == [["Linux"], ["macOS"]]
    linux = {e["techniqueID"] for e in annotated(layers[0])}
    raw_linux = {
        rawdata.ext_id(o)
        for o in rawdata.objects(E18)
        if o["type"] == "attack-pattern"
        and rawdata.active(o)
        and "Linux" in o.get("x_mitre_platforms", [])
    }
    assert linux <= raw_linux and linux


def test_download_headers_and_errors(client: TestClient) -> None:
    r = client.get("/api/v1/layers/coverage", params={"domain": "ics"})
    assert r.headers["content-disposition"] == 'attachment; filename="kbmap-coverage-ics-18.1.json"'
    assert r.headers["content-type"] == "application/json"
    for params, field in (
        ({"platform": "Plan 9"}, "platform"),
        ({"groups": "G9999"}, None),
    ):
        bad = client.get("/api/v1/layers/coverage", params=params)
        assert bad.status_code == 422, bad.text
        if field:
            assert bad.json()["error"]["location"]["field"] == field
    assert client.get("/api/v1/layers/threat").json()["error"]["location"]["field"] == "groups"
    assert (
        client.get("/api/v1/layers/telemetry").json()["error"]["location"]["field"] == "collected"
    )
    assert (
        client.get("/api/v1/layers/compare", params={"a": "sigma"}).json()["error"]["location"][
            "field"
        ]
        == "b"
    )
    assert client.get("/api/v1/layers/diff", params={"from": "18.1"}).status_code == 422
    assert client.get("/api/v1/layers/nonsense").status_code == 422


def test_svg_matrix_colours_and_tactic_order(client: TestClient) -> None:
    r = client.get("/api/v1/layers/coverage.svg", params={"version": "18.1"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert (
        r.headers["content-disposition"]
        == 'attachment; filename="kbmap-coverage-enterprise-18.1.svg"'
    )
    root = ET.fromstring(r.content)
    (matrix,) = [o for o in rawdata.objects(E18) if o["type"] == "x-mitre-matrix"]
    objs = rawdata.by_stix_id(E18)
    order = [objs[t]["x_mitre_shortname"] for t in matrix["tactic_refs"]]
    tactics = [g.get("id") for g in root.iterfind(".//s:g[@class='tactic']", SVG)]
    assert tactics == [f"tactic-{t}" for t in order]
    by_row = {x["id"]: x for x in rows(client)}
    full = next(
        x
        for x in by_row.values()
        if x["score"] == 100 and not x["is_subtechnique"] and not x["tactic_scores"]
    )
    none = next(x for x in by_row.values() if not x["covered"] and not x["is_subtechnique"])

    def fill(tid: str, tactic: str) -> str:
        g = root.find(f".//s:g[@id='cell-{tactic}-{tid}']", SVG)
        assert g is not None, (tid, tactic)
        rect = g.find("s:rect", SVG)
        assert rect is not None
        return str(rect.get("fill"))

    assert fill(full["id"], full["tactics"][0]) == COVERAGE_GRADIENT[-1]
    assert fill(none["id"], none["tactics"][0]) == "#ffffff"
    title = "".join(root.find("s:text", SVG).itertext())  # type: ignore[union-attr]
    assert "enterprise 18.1" in title
    assert "sigma-attack18" in ET.tostring(root, encoding="unicode")


def test_xlsx_opens_with_the_matrix_and_entries(client: TestClient) -> None:
    r = client.get("/api/v1/layers/threat.xlsx", params={"version": "18.1", "groups": "G0016"})
    assert r.status_code == 200
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["matrix", "entries", "legend"]
    headers = [c.value for c in wb["matrix"][4]]
    assert headers[0] == "Reconnaissance" and headers[-1] == "Impact"
    d = layer(client, "threat", groups="G0016")
    assert wb["entries"].max_row == len(d["techniques"]) + 1
    # "not used (disabled)" has the disabled tiles' colour: no second "disabled" line
    assert [row[0].value for row in wb["legend"].iter_rows()] == [
        x["label"] for x in d["legendItems"]
    ]
