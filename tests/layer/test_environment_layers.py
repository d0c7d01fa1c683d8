"""Layers judged by an environment (`environment=`): the effective and visibility kinds, and what
an environment does to the other kinds — on the shared sigma-attack18 catalog and the DeTT&CT
endpoints sample, checked against the rows `/coverage/techniques?environment=` serves."""

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
import yaml
from fastapi.testclient import TestClient

from app.coverage.service import STATES
from app.layer.kinds import KINDS
from app.layer.kinds.effective import STATES as LAYER_STATES
from app.layer.kinds.threat import COVERED, UNCOVERED
from tests.conftest import ROOT
from tests.environment.conftest import ENDPOINTS, client_with_sample

SCHEMA = json.loads((ROOT / "kb/schemas/navigator-layer-4.5.schema.json").read_text())
SVG = {"s": "http://www.w3.org/2000/svg"}
ENV = "endpoints"
BASE = {"version": "18.1", "catalog": "sigma-attack18", "environment": ENV}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module")
def client(
    catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The app on a copy of the catalog database with the DeTT&CT endpoints sample imported."""
    yield from client_with_sample(catalog_sqlite_file, tmp_path_factory.mktemp("env_layers"), ENV)


def layer(client: TestClient, kind: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"/api/v1/layers/{kind}", params={**BASE, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    jsonschema.validate(body, SCHEMA)
    return body


def rows(client: TestClient, **params: Any) -> dict[str, dict[str, Any]]:
    """The API's rows, by technique id: what the layers must agree with."""
    r = client.get("/api/v1/coverage/techniques", params={**BASE, "limit": 1000, **params})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == len(page["items"])
    return {x["id"]: x for x in page["items"]}


def entries(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The layer's own entries (not the bare parents `showSubtechniques` adds)."""
    return [e for e in d["techniques"] if "comment" in e]


def test_layer_states_are_coverage_states_in_order() -> None:
    assert tuple(LAYER_STATES) == STATES
    assert len({c for c, _ in LAYER_STATES.values()}) == len(STATES)
    assert {"effective", "visibility"} <= set(KINDS)
    refused = {k for k, v in KINDS.items() if not v.takes_environment}
    assert refused == {"telemetry", "diff"}


def test_effective_layer_colours_each_technique_and_tactic_by_its_state(
    client: TestClient,
) -> None:
    d = layer(client, "effective")
    by_row = rows(client)
    legend = d["legendItems"]
    assert len(legend) == len(STATES)
    colour = {state: item["color"] for state, item in zip(STATES, legend, strict=True)}
    label = {state: item["label"] for state, item in zip(STATES, legend, strict=True)}
    assert all(text.lower().startswith(s.replace("_", " ")) for s, text in label.items())
    seen: set[tuple[str, str | None]] = set()
    for e in entries(d):
        r = by_row[e["techniqueID"]]
        assert e["color"] == colour[r["state"]], e["techniqueID"]
        assert e["comment"] == label[r["state"]]
        assert e["score"] == pytest.approx(r["effective_score"])
        meta = {m["name"]: m["value"] for m in e["metadata"]}
        assert meta["state"] == r["state"]
        assert meta["rules firing"] == f"{r['effective_rules']} of {r['rules']}"
        seen.add((e["techniqueID"], e.get("tactic")))
    want = {(tid, t) for tid, r in by_row.items() for t in r["tactics"] or [None]}
    assert seen == want
    states = {r["state"] for r in by_row.values()}
    assert {"effective", "rule_without_telemetry", "telemetry_only", "blind"} <= states
    assert ENV in d["name"] and ENV in d["description"] and "sigma-attack18" in d["description"]
    assert {"name": "environment", "value": ENV} in d["metadata"]


def test_visibility_is_the_share_of_detecting_data_components_collected(
    client: TestClient,
) -> None:
    d = layer(client, "visibility")
    by_row = rows(client)
    got = {e["techniqueID"]: e for e in entries(d)}
    assert set(got) == set(by_row)
    assert d["gradient"]["minValue"] == 0 and d["gradient"]["maxValue"] == 100
    partial = 0
    for tid, r in by_row.items():
        e = got[tid]
        if not r["detectable_by"]:
            assert "score" not in e and e["color"], tid
            continue
        want = 100 * len(r["visible_data_components"]) / r["detectable_by"]
        assert e["score"] == pytest.approx(want, abs=0.01), tid
        meta = {m["name"]: m["value"] for m in e["metadata"]}
        assert meta["data components that can detect it"] == str(r["detectable_by"])
        partial += 0 < want < 100
    assert partial > 0 and any(e.get("score") == 100 for e in got.values())
    excepted = {x["technique_id"] for x in yaml.safe_load(ENDPOINTS.read_text())["exceptions"]}
    assert excepted
    for tid in excepted & set(got):
        assert got[tid]["score"] == 0 and by_row[tid]["detectable_by"] > 0
        assert "excluded" in got[tid]["comment"]


@pytest.mark.parametrize("kind", ["effective", "visibility"])
def test_svg_and_xlsx_of_environment_kinds(client: TestClient, kind: str) -> None:
    svg = client.get(f"/api/v1/layers/{kind}.svg", params=BASE)
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    book = client.get(f"/api/v1/layers/{kind}.xlsx", params=BASE)
    assert book.status_code == 200 and book.headers["content-type"] == XLSX
    wb = openpyxl.load_workbook(io.BytesIO(book.content))
    d = layer(client, kind)
    assert [row[0].value for row in wb["legend"].iter_rows()][: len(d["legendItems"])] == [
        x["label"] for x in d["legendItems"]
    ]
    assert ENV in svg.text
    if kind != "effective":
        return
    root = ET.fromstring(svg.content)
    by_row = rows(client)
    colour = {s: x["color"] for s, x in zip(STATES, d["legendItems"], strict=True)}
    for state in ("effective", "blind"):
        r = next(x for x in by_row.values() if x["state"] == state and not x["is_subtechnique"])
        g = root.find(f".//s:g[@id='cell-{r['tactics'][0]}-{r['id']}']", SVG)
        assert g is not None
        rect = g.find("s:rect", SVG)
        assert rect is not None and rect.get("fill") == colour[state]


def test_environment_kinds_need_an_environment(client: TestClient) -> None:
    plain = {"version": "18.1", "catalog": "sigma-attack18"}
    for path in ("effective", "visibility", "effective.svg", "visibility.xlsx"):
        r = client.get(f"/api/v1/layers/{path}", params=plain)
        assert r.status_code == 422, (path, r.text)
        err = r.json()["error"]
        assert err["location"]["field"] == "environment" and "environment" in err["message"]
    missing = client.get("/api/v1/layers/effective", params={**BASE, "environment": "nowhere"})
    assert missing.status_code == 404 and "nowhere" in missing.text


def test_kinds_without_a_meaning_for_it_refuse_an_environment(client: TestClient) -> None:
    for kind, params in (("telemetry", {"collected": "Process Creation"}), ("diff", {})):
        r = client.get(f"/api/v1/layers/{kind}", params={**BASE, **params})
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["location"]["field"] == "environment"
        if kind == "telemetry":
            assert "effective kind with environment=" in err["message"]
    svg = client.get(
        "/api/v1/layers/telemetry.svg", params={**BASE, "collected": "Process Creation"}
    )
    assert svg.status_code == 422


def test_coverage_layer_in_an_environment_scores_the_rules_that_fire(client: TestClient) -> None:
    d = layer(client, "coverage")
    by_row = rows(client)
    got = {e["techniqueID"]: e for e in entries(d)}
    assert set(got) == {tid for tid, r in by_row.items() if r["effective_score"] > 0}
    assert all(e["score"] == pytest.approx(by_row[t]["effective_score"]) for t, e in got.items())
    plain = client.get(
        "/api/v1/layers/coverage", params={"version": "18.1", "catalog": "sigma-attack18"}
    )
    assert len(entries(plain.json())) > len(got)  # rules that cannot fire here no longer count
    assert "effective score" in d["description"] and ENV in d["description"]


def test_gaps_layer_in_an_environment_lists_the_techniques_not_effective(
    client: TestClient,
) -> None:
    d = layer(client, "gaps")
    by_row = rows(client)
    got = {e["techniqueID"]: e for e in entries(d)}
    assert set(got) == {tid for tid, r in by_row.items() if r["state"] != "effective"}
    for tid, e in got.items():
        meta = {m["name"]: m["value"] for m in e["metadata"]}
        assert meta["state"] == by_row[tid]["state"]
        if by_row[tid]["missing_log_sources"]:
            assert meta["missing log sources"].startswith(by_row[tid]["missing_log_sources"][0])


def test_threat_layer_in_an_environment_counts_only_effective(client: TestClient) -> None:
    d = layer(client, "threat", groups="G0016")
    by_row = rows(client, groups="G0016")
    used = [e for e in entries(d) if e.get("enabled", True)]
    assert {e["techniqueID"] for e in used} == set(by_row)
    for e in used:
        r = by_row[e["techniqueID"]]
        ok = r["state"] == "effective" and r["effective_score"] > 0
        assert e["color"] == (COVERED if ok else UNCOVERED), e["techniqueID"]
    assert {e["color"] for e in used} == {COVERED, UNCOVERED}
