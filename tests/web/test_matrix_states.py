"""Pictures (issue 18): sub-technique states legible in the SVG and the HTML matrix, legend colours
apart for colour-blind readers, text on every tile colour at WCAG AA.

The G0016 gap picture is checked against the gap API and the raw bundle; colours with the
simulation and colour difference in tests/layer/colour_vision.py (Machado et al. 2009 at severity
1.0 in linear RGB, CIEDE2000), not with the code under test.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.layer import render
from app.layer.kinds.compare import COMPARE
from app.layer.kinds.coverage import COVERAGE_GRADIENT, WHITE
from app.layer.kinds.delta import DELTA
from app.layer.kinds.diff import DIFF
from app.layer.kinds.effective import STATES
from app.layer.kinds.gaps import GAP_GRADIENT
from app.layer.kinds.telemetry import TELEMETRY
from app.layer.kinds.threat import COVERED, UNCOVERED, UNUSED
from app.layer.kinds.visibility import UNDETECTABLE, VISIBILITY_GRADIENT
from app.layer.navigator import Gradient
from app.main import create_app
from app.web import views
from tests import rawdata
from tests.layer import colour_vision as cv
from tests.web.dom import Node, parse

E18 = "enterprise-attack-18.1.json.gz"
SVG = {"s": "http://www.w3.org/2000/svg"}
G0016 = {"version": "18.1", "groups": "G0016"}
DEFICIENCIES = (None, "deuteranopia", "protanopia", "tritanopia")
MIN_DELTA_E = 10.0  # CIEDE2000 between any two colours of one legend, normal or simulated
AA = 4.5  # WCAG 2.x AA for normal text

# Each legend as one picture shows it: the colours a reader must tell apart in the same matrix.
LEGENDS: dict[str, dict[str, str]] = {
    "five effective states": {s: c for s, (c, _) in STATES.items()},
    "coverage gradient and uncovered": {
        "uncovered": WHITE,
        "weak": COVERAGE_GRADIENT[0],
        "middle": COVERAGE_GRADIENT[1],
        "strong": COVERAGE_GRADIENT[-1],
    },
    "gap priority and no gap": {
        "no gap": WHITE,
        "low": GAP_GRADIENT[0],
        "middle": GAP_GRADIENT[1],
        "high": GAP_GRADIENT[-1],
    },
    "threat": {"covered": COVERED, "uncovered": UNCOVERED, "unused": UNUSED},
    "telemetry": {k: c for k, (c, _) in TELEMETRY.items()},
    "delta": {k: c for k, (c, _) in DELTA.items()},
    "compare": dict(COMPARE),
    "diff": {k: c for k, (c, _) in DIFF.items()},
}


# ---- colour maths: the test's own tools, checked against published values -----------------------


def test_ciede2000_matches_sharma_2005_and_the_simulation_merges_red_and_green() -> None:
    pairs = [  # Sharma, Wu, Dalal (2005), table 1: pairs 1, 3, 7, 17
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 2.8361, -74.0200), (50.0, 0.0, -82.7485), 3.4412),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ]
    for a, b, expected in pairs:
        assert cv.ciede2000(a, b) == pytest.approx(expected, abs=1e-4)
    # the simulation does what it is for: red and green that anyone tells apart merge for
    # deuteranopes and protanopes, while tritanopes still see them apart
    assert cv.delta_e("#cc0000", "#6b8e00") > 50
    assert cv.delta_e("#cc0000", "#6b8e00", "deuteranopia") < 10
    assert cv.delta_e("#cc0000", "#6b8e00", "tritanopia") > 30
    assert cv.delta_e("#cc0000", "#005500") > 50  # red looks dark to a protanope
    assert cv.delta_e("#cc0000", "#005500", "protanopia") < 5
    assert cv.contrast("#ffffff", "#000000") == pytest.approx(21.0)
    assert cv.contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the AA grey


@pytest.mark.parametrize("legend", LEGENDS)
@pytest.mark.parametrize("deficiency", DEFICIENCIES)
def test_legend_colours_stay_apart_for_colour_blind_readers(
    legend: str, deficiency: str | None
) -> None:
    delta, a, b = cv.closest_pair(LEGENDS[legend], deficiency)
    assert delta >= MIN_DELTA_E, f"{legend}: {a} and {b} look alike ({deficiency}): ΔE {delta:.1f}"


def test_the_old_palette_failed_the_same_check() -> None:
    """The check can fail: the coverage gradient before issue 18 (orange → green) merged."""
    old = {"uncovered": "#ffffff", "weak": "#fdd49e", "middle": "#c2e699", "strong": "#31a354"}
    assert cv.closest_pair(old, "deuteranopia")[0] < MIN_DELTA_E


def _tile_colours() -> set[str]:
    """Every fill a tile of a page or picture can have: legends, gradient steps the matrix
    pages use (a score in steps of 0.5), gap and visibility gradients, disabled and white."""
    fills = {c for legend in LEGENDS.values() for c in legend.values()}
    fills |= {views.score_fill(s / 2) for s in range(0, 201)}
    fills |= {render.DISABLED, UNDETECTABLE, *VISIBILITY_GRADIENT}
    for colours, top in ((GAP_GRADIENT, 40), (VISIBILITY_GRADIENT, 100)):
        g = Gradient(colors=colours, minValue=0, maxValue=top)
        fills |= {render.gradient_color(g, top * k / 100) for k in range(101)}
    return fills


def test_text_on_every_tile_colour_reaches_wcag_aa() -> None:
    fills = _tile_colours()
    assert len(fills) > 100
    for fill in fills:
        assert views.ink(fill) == render.ink(fill)  # the page and the SVG agree
        ratio = cv.contrast(views.ink(fill), fill)
        assert ratio >= AA, f"{views.ink(fill)} on {fill}: {ratio:.2f}"
        assert render.contrast_ratio(views.ink(fill), fill) == pytest.approx(ratio)
    # a greyed (disabled) tile's text too
    assert cv.contrast("#595959", render.DISABLED) >= AA
    # mid-tones where the old brightness rule put white text below AA
    for fill in ("#80cdc1", "#fe9929", "#9e9ac8", "#74c476"):
        assert cv.contrast(views.ink(fill), fill) >= AA


# ---- the G0016 gap picture ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(catalog_sqlite_file: Path) -> Iterator[TestClient]:
    s = Settings(database_url=f"sqlite:///{catalog_sqlite_file}", environment="test")
    with TestClient(create_app(s)) as c:
        yield c


def _get(client: TestClient, url: str, **params: Any) -> Any:
    r = client.get(url, params=params)
    assert r.status_code == 200, r.text
    return r


def _gap_ids(client: TestClient) -> list[str]:
    page = _get(client, "/api/v1/gaps", limit=1000, **G0016).json()
    assert page["total"] == len(page["items"])
    return [g["id"] for g in page["items"]]


def _raw_subs() -> dict[str, list[str]]:
    """Parent id → its active sub-technique ids, from the raw bundle."""
    out: dict[str, list[str]] = {}
    for tid in rawdata.active_techniques(E18):
        if "." in tid:
            out.setdefault(tid.split(".")[0], []).append(tid)
    return out


def _raw_names() -> dict[str, str]:
    return {
        rawdata.ext_id(o) or "": o["name"]
        for o in rawdata.objects(E18)
        if o["type"] == "attack-pattern" and rawdata.active(o)
    }


def _svg_tiles(root: ET.Element, cls: str) -> list[ET.Element]:
    return list(root.iterfind(f".//s:g[@class='{cls}']", SVG))


def _text(g: ET.Element) -> str:
    return " ".join("".join(t.itertext()) for t in g.iterfind("s:text", SVG))


def test_every_g0016_gap_sub_technique_is_drawn_under_its_parent(client: TestClient) -> None:
    gaps = _gap_ids(client)
    subs = {g for g in gaps if "." in g}
    assert len(subs) > 4 and len(subs) > len(gaps) - len(subs)  # mostly sub-techniques
    root = ET.fromstring(_get(client, "/api/v1/layers/gaps.svg", **G0016).content)
    drawn = _svg_tiles(root, "subtechnique")
    assert {g.get("data-technique") for g in drawn} == subs
    names = _raw_names()
    raw_subs = _raw_subs()
    per_parent: Counter[tuple[str, str]] = Counter()
    for g in drawn:
        sid, parent = str(g.get("data-technique")), str(g.get("data-parent"))
        assert parent == sid.split(".")[0]
        assert sid in _text(g) and names[sid][:20] in _text(g)  # id and its own name
        per_parent[(str(g.get("data-tactic")), parent)] += 1
    for (tactic, parent), k in per_parent.items():
        tile = root.find(f".//s:g[@id='cell-{tactic}-{parent}']", SVG)
        assert tile is not None
        badge = tile.find("s:g[@class='sub-badge']", SVG)
        assert badge is not None, parent
        assert _text(badge) == f"{k}/{len(raw_subs[parent])} sub"
    # parents that are gaps themselves are tiles too
    tiles = {g.get("data-technique") for g in _svg_tiles(root, "technique")}
    assert {g for g in gaps if "." not in g} <= tiles


def test_threat_picture_draws_every_sub_technique_g0016_uses(client: TestClient) -> None:
    objs = rawdata.by_stix_id(E18)
    group = rawdata.by_ext_id(E18, "intrusion-set", "G0016")["id"]
    used = {
        rawdata.ext_id(objs[r["target_ref"]])
        for r in rawdata.relationships(E18, "uses")
        if r["source_ref"] == group
        and r["target_ref"].startswith("attack-pattern--")
        and rawdata.active(objs[r["target_ref"]])
    }
    used_subs = {t for t in used if t and "." in t}
    assert len(used_subs) > 10
    root = ET.fromstring(_get(client, "/api/v1/layers/threat.svg", **G0016).content)
    drawn = {g.get("data-technique") for g in _svg_tiles(root, "subtechnique")}
    assert used_subs <= drawn
    legend = root.find(".//s:g[@class='legend']", SVG)
    assert legend is not None
    labels = [t.text for t in legend.iterfind("s:text", SVG)]
    assert labels.count("disabled") == 0  # "not used (disabled)" says it once
    # the whole picture is taller than the folded one, not wider
    assert int(root.get("width", 0)) == 2 * render.MARGIN + 14 * (render.CELL_W + render.GAP)


def _cells(page: Node) -> dict[str, Node]:
    return {n.attrs["id"]: n for n in page.select("li", "cell")}


def test_g0016_matrix_page_shows_every_gap_sub_technique_open(client: TestClient) -> None:
    gaps = _gap_ids(client)
    page = parse(_get(client, "/matrix", **G0016).text)
    subs = {n.attrs["data-technique"]: n for n in page.select("li", "sub")}
    for gid in (g for g in gaps if "." in g):
        assert gid in subs, gid
        assert "uncovered" in subs[gid].classes
    for details in page.select("details", "subs"):
        assert "open" in details.attrs  # a threat-scoped view: every listed one is used
    assert "shown open: each is used by G0016" in page.text


def test_whole_matrix_badge_counts_and_marks_each_sub_technique(client: TestClient) -> None:
    rows = _get(client, "/api/v1/coverage/techniques", version="18.1", limit=1000).json()["items"]
    by_id = {r["id"]: r for r in rows}

    def covered(tid: str, tactic: str) -> bool:
        r = by_id[tid]
        return bool((r["tactic_scores"] or {}).get(tactic, r["score"]) > 0)

    page = parse(_get(client, "/matrix", version="18.1").text)
    checked = 0
    for section in page.select("section", "tactic"):
        tactic = section.attrs["id"].removeprefix("tactic-")
        for d in section.select("details", "subs"):
            assert "open" not in d.attrs  # folded in a whole-release view
            subs = d.select("li", "sub")
            marks = d.select("i")
            assert len(marks) == len(subs) > 0
            k = sum(1 for s in subs if covered(s.attrs["data-technique"], tactic))
            assert d.select("span", "sub-badge")[0].text == f"{k}/{len(subs)}"
            for m, s in zip(marks, subs, strict=True):  # a mark has its sub-technique's colour
                assert m.attrs["style"].split(":")[1].strip() in s.attrs["style"]
            checked += 1
    assert checked > 100
