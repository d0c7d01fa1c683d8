"""The layer kinds' `build`, entries.py and render.py on tiny hand-built inputs: no bundle, no
database."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from app.attack.changes import ReleaseView, build_view, diff_releases
from app.coverage.models import Gap, PriorityParts, TechniqueCoverage
from app.layer import entries, importer
from app.layer.entries import LayerContext, RuleLine
from app.layer.kinds.coverage import COVERAGE_GRADIENT, Coverage, Covered
from app.layer.kinds.diff import DIFF, Changes, Diff
from app.layer.kinds.gaps import Gaps
from app.layer.kinds.telemetry import TELEMETRY, Seen, Telemetry
from app.layer.kinds.threat import COVERED, UNCOVERED, Threat, Used
from app.layer.navigator import Layer, Technique, dump_layers, read_layers
from app.layer.render import Cell, Column, gradient_color, render_svg

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "kb/schemas/navigator-layer-4.5.schema.json").read_text()
)
CTX = LayerContext(
    kind="coverage",
    domain="enterprise",
    version="18.1",
    platforms=["Linux", "Windows"],
    catalogs=["cat-a"],
    base_url="http://kb.example:8000",
)


def row(tid: str, score: float, tactics: list[str], **kw: Any) -> TechniqueCoverage:
    return TechniqueCoverage(
        id=tid,
        name=kw.pop("name", f"Technique {tid}"),
        tactics=tactics,
        platforms=["Windows"],
        is_subtechnique="." in tid,
        parent=tid.split(".")[0] if "." in tid else None,
        rules=kw.pop("rules", 1 if score else 0),
        remapped_rules=0,
        score=score,
        covered=score > 0,
        catalogs=["cat-a"] if score else [],
        subtechniques_total=0,
        subtechniques_covered=0,
        rolled_up_rules=0,
        rolled_up_score=score,
        rolled_up_covered=score > 0,
        tactic_scores=kw.pop("tactic_scores", {}),
    )


def empty_strings(value: Any) -> list[Any]:
    if value == "":
        return [value]
    if isinstance(value, dict):
        return [x for v in value.values() for x in empty_strings(v)]
    if isinstance(value, list):
        return [x for v in value for x in empty_strings(v)]
    return []


def test_coverage_layer_entries_tactics_and_parents() -> None:
    rows = [
        row("T1000", 0.0, ["execution"]),
        row("T1000.001", 50.0, ["execution"]),
        row("T2000", 40.0, ["execution", "persistence"], tactic_scores={"execution": 40.0}),
        row("T3000", 100.0, ["discovery"], rules=3),
        row("T4000", 0.0, ["discovery"]),
    ]
    lines = [
        RuleLine("cat-a", f"r{i}", f"rule <{i}> & co", enabled=i != 2)
        for i in range(entries.MAX_RULE_METADATA + 3)
    ]
    layer = Coverage().build(
        CTX, Covered(rows, {"T3000": entries.rule_notes(lines, base_url=CTX.base_url)})
    )
    d = json.loads(dump_layers(layer))
    jsonschema.validate(d, SCHEMA)
    assert empty_strings(d) == []
    got = {(e["techniqueID"], e.get("tactic")): e for e in d["techniques"]}
    assert set(got) == {
        ("T1000", None),
        ("T1000.001", None),
        ("T2000", "execution"),
        ("T3000", None),
    }
    assert got[("T1000", None)] == {"techniqueID": "T1000", "showSubtechniques": True}
    assert got[("T1000.001", None)]["score"] == 50
    assert got[("T2000", "execution")]["score"] == 40
    t3 = got[("T3000", None)]
    assert t3["score"] == 100 and isinstance(t3["score"], int)
    names = [m["name"] for m in t3["metadata"]]
    assert names[:3] == ["score", "rules", "cat-a r0"]
    assert names[-1] == "more rules" and len(names) == 2 + entries.MAX_RULE_METADATA + 1
    assert {"name": "cat-a r2", "value": "rule <2> & co (disabled)"} in t3["metadata"]
    urls = [x["url"] for x in t3["links"] if "url" in x]
    assert urls[0] == "http://kb.example:8000/catalogs/cat-a/rules/r0"  # the rule's page
    assert "https://attack.mitre.org/techniques/T3000/" in urls
    assert {"divider": True} in t3["links"]
    assert d["versions"] == {"attack": "18", "navigator": "5.1.0", "layer": "4.5"}
    assert d["domain"] == "enterprise-attack"
    assert d["filters"] == {"platforms": ["Linux", "Windows"]}
    assert d["gradient"] == {"colors": COVERAGE_GRADIENT, "minValue": 0, "maxValue": 100}
    assert {"name": "catalogs", "value": "cat-a"} in d["metadata"]


def test_coverage_min_score_drops_weak_entries() -> None:
    rows = [row("T1000", 30.0, ["execution"]), row("T2000", 80.0, ["execution"])]
    layer = Coverage(min_score=50).build(CTX, Covered(rows, {}))
    assert [e.techniqueID for e in layer.techniques] == ["T2000"]


def gap(tid: str, priority: float, score: float = 0.0) -> Gap:
    parts = PriorityParts(
        threat_uses=2,
        threat=11.0,
        platform_span=1,
        platforms=2.0,
        telemetry="unknown",
        telemetry_bonus=0.0,
        weakness=1.0,
    )
    return Gap(
        id=tid,
        name=f"Technique {tid}",
        tactics=["execution"],
        platforms=["Windows"],
        score=score,
        priority=priority,
        parts=parts,
        groups=["G0016", "G0007"],
        software=[],
        campaigns=[],
        data_components=["Process Creation"],
        collected_data_components=[],
        detection_strategies=[],
        analytics=[],
        mitigations=[],
    )


def test_gaps_layer_scores_priority_and_explains() -> None:
    layer = Gaps(min_score=50).build(CTX, [gap("T1000", 12.5), gap("T2000.002", 3.0, score=20.0)])
    d = json.loads(dump_layers(layer))
    jsonschema.validate(d, SCHEMA)
    assert empty_strings(d) == []
    by_id = {e["techniqueID"]: e for e in d["techniques"]}
    assert by_id["T1000"]["score"] == 12.5
    assert by_id["T2000"] == {"techniqueID": "T2000", "showSubtechniques": True}
    meta = {m["name"]: m["value"] for m in by_id["T1000"]["metadata"]}
    assert meta["priority"] == "12.5" and meta["groups"] == "G0016, G0007"
    assert "software" not in meta  # empty lists are left out, not written as ""
    assert "weak (score 20 < 50)" in by_id["T2000.002"]["comment"]
    assert d["gradient"]["maxValue"] == 13 and d["sorting"] == 3


def test_threat_layer_colours_and_disables_the_rest() -> None:
    used = [row("T1000", 60.0, ["execution"]), row("T2000", 0.0, ["execution"])]
    ctx = LayerContext(
        kind="threat", domain="ics", version="18.1", platforms=["Windows"], threat=["G0001"]
    )
    layer = Threat().build(ctx, Used(used, ["T3000"], {"T1000": [("G0001", "Group & <One>")]}))
    d = json.loads(dump_layers(layer))
    jsonschema.validate(d, SCHEMA)
    by_id = {e["techniqueID"]: e for e in d["techniques"]}
    assert by_id["T1000"]["color"] == COVERED
    assert by_id["T2000"]["color"] == UNCOVERED
    assert by_id["T3000"] == {"techniqueID": "T3000", "enabled": False}
    assert d["domain"] == "ics-attack"


def test_telemetry_states() -> None:
    rows = [row(t, s, ["execution"]) for t, s in (("T1", 0), ("T2", 0), ("T3", 10), ("T4", 10))]
    rows = [r.model_copy(update={"id": f"T{1000 + i}"}) for i, r in enumerate(rows)]
    dcs = {"T1000": {"Process Creation"}, "T1001": {"File Access"}, "T1002": {"Process Creation"}}
    layer = Telemetry(collected=["process creation"]).build(CTX, Seen(rows, dcs))
    colors = {e.techniqueID: e.color for e in layer.techniques}
    t = TELEMETRY
    assert colors == {
        "T1000": t["cheap"][0],
        "T1001": t["blind"][0],
        "T1002": t["covered"][0],
        "T1003": t["covered-blind"][0],
    }


@dataclass
class Obj:
    """An ATT&CK object as the release diff reads it (what an `AttackObject` row offers)."""

    stix_id: str
    kind: str
    attack_id: str | None
    name: str
    description: str = "d"
    revoked: bool = False
    deprecated: bool = False
    platforms: list[str] = field(default_factory=lambda: ["Windows"])
    data: dict[str, Any] = field(default_factory=dict)


def tech(tid: str, *, tactics: tuple[str, ...] = ("execution",), **kw: Any) -> Obj:
    phases = [{"kill_chain_name": "mitre-attack", "phase_name": t} for t in tactics]
    return Obj(
        f"attack-pattern--{tid}",
        "technique",
        tid,
        kw.pop("name", tid),
        **kw,
        data={"kill_chain_phases": phases},
    )


def release(version: str, objs: list[Obj], revoked_by: dict[str, str]) -> ReleaseView:
    rels = [
        ("revoked-by", f"attack-pattern--{a}", f"attack-pattern--{b}")
        for a, b in revoked_by.items()
    ]
    return build_view(
        domain="enterprise", version=version, detection_model="x", objects=objs, relationships=rels
    )


def test_diff_layer_from_the_release_diff() -> None:
    old = release(
        "17.1",
        [tech(t) for t in ("T1001", "T1002", "T1003", "T1004", "T1006")]
        + [tech("T1005", description="old")],
        {},
    )
    new = release(
        "18.1",
        [
            tech("T1001"),
            tech("T1002", name="Renamed", tactics=("execution", "persistence")),
            tech("T1003", revoked=True),
            tech("T1004", deprecated=True),
            tech("T1005", description="new"),
            tech("T1006"),
            tech("T1007"),
            tech("T1008", platforms=["Linux"]),
        ],
        {"T1003": "T1007"},
    )
    changes = diff_releases(old, new)
    t = changes.techniques
    assert [x.id for x in t.added] == ["T1007", "T1008"]
    assert [(x.id, x.replacement) for x in t.revoked] == [("T1003", "T1007")]
    assert [x.id for x in t.deprecated] == ["T1004"]
    assert [x.id for x in t.renamed] == [x.id for x in t.tactics_changed] == ["T1002"]
    assert [x.id for x in t.description_changed] == ["T1005"]
    scoped = entries.in_scope(new.techniques, platforms=["windows"], tactics=[])
    assert "T1008" not in scoped and "T1003" not in scoped
    windows = dataclasses.replace(CTX, platforms=["Windows"])  # the scope `build` reads
    layer = Diff().build(windows, Changes(changes, old.techniques, new.techniques))
    d = json.loads(dump_layers(layer))
    jsonschema.validate(d, SCHEMA)
    by_id = {e["techniqueID"]: e for e in d["techniques"]}
    assert set(by_id) == {"T1002", "T1005", "T1007"}
    assert by_id["T1007"]["color"] == DIFF["added"][0]
    assert "replaces T1003 (revoked)" in by_id["T1007"]["comment"]
    assert [m["value"] for m in by_id["T1002"]["metadata"]] == [
        "name: T1002 → Renamed",
        "tactics: execution → execution, persistence",
    ]
    assert [m["value"] for m in by_id["T1005"]["metadata"]] == ["description"]
    meta = {m["name"]: m["value"] for m in d["metadata"]}
    assert meta["revoked"] == "T1003" and meta["deprecated"] == "T1004"
    assert (meta["added"], meta["changed"], meta["from"]) == ("2", "2", "ATT&CK enterprise 17.1")
    assert "catalogs" not in meta


def test_catalog_document_counts_scored_and_annotated_entries() -> None:
    a = Layer(
        name="hand kept",
        domain="enterprise-attack",
        techniques=[
            Technique(techniqueID="T1000", score=80),
            Technique(techniqueID="T1001", score=0, comment="explicitly not covered"),
            Technique(techniqueID="T1002", showSubtechniques=True),  # view state only
            Technique(techniqueID="T1003", color="#ff0000"),  # annotated, unscored
            Technique(techniqueID="T1004", color="#ff0000", enabled=False),
            Technique(techniqueID="T1005", tactic="execution", score=5),
        ],
    )
    b = Layer(
        name="tab 2",
        domain="enterprise-attack",
        techniques=[Technique(techniqueID="T1000", score=95)],
    )
    doc = importer.catalog_document([a, b], name="mine")
    rules = {r["id"]: r for r in doc["rules"]}  # type: ignore[attr-defined]
    assert set(rules) == {"mine:T1000", "mine:T1003", "mine:T1005:execution"}
    assert rules["mine:T1000"]["severity"] == "critical" and rules["mine:T1000"]["x-score"] == 95
    assert rules["mine:T1005:execution"]["techniques"] == ["T1005@execution"]
    assert rules["mine:T1005:execution"]["severity"] == "informational"
    assert "severity" not in rules["mine:T1003"]


def test_reading_navigator_exports_and_refusing_bad_fields() -> None:
    exported = {
        "name": "from navigator",
        "versions": {"attack": "16", "navigator": "5.1.0", "layer": "4.5"},
        "domain": "enterprise-attack",
        "description": "",
        "techniques": [
            {
                "techniqueID": "T1059",
                "tactic": "execution",
                "color": "",
                "comment": "",
                "score": 3,
                "enabled": True,
                "metadata": [],
                "links": [],
                "showSubtechniques": False,
            },
        ],
        "gradient": {"colors": ["#ff6666ff", "#8ec843ff"], "minValue": 0, "maxValue": 100},
        "legendItems": [],
        "metadata": [{"name": "a", "value": "b"}, {"divider": True}],
    }
    (layer,) = read_layers(exported)
    t = layer.techniques[0]
    assert (t.color, t.comment, t.metadata, t.score) == (None, None, None, 3)
    with pytest.raises(ValidationError) as err:
        read_layers([exported, {**exported, "techniques": [{"techniqueID": "T59", "score": True}]}])
    locs = {e["loc"] for e in err.value.errors()}
    assert locs == {(1, "techniques", 0, "techniqueID"), (1, "techniques", 0, "score")}
    with pytest.raises(ValidationError):
        read_layers(
            {**exported, "gradient": {"colors": ["#fff", "#000"], "minValue": 5, "maxValue": 5}}
        )


def test_svg_escapes_text_and_colours_cells() -> None:
    layer = Coverage().build(
        CTX, Covered([row("T1000", 100.0, ["execution"], name='Run <script> & "quote"')], {})
    )
    matrix = [
        Column(
            shortname="execution",
            name="Execution & <More>",
            cells=(Cell("T1000", 'Run <script> & "quote"'), Cell("T2000", "Other\x01")),
        )
    ]
    svg = render_svg(layer, matrix, subtitle="a < b")
    root = ET.fromstring(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    cells = {g.get("data-technique"): g for g in root.iterfind(".//s:g[@class='technique']", ns)}
    fill = {k: g.find("s:rect", ns).get("fill") for k, g in cells.items()}  # type: ignore[union-attr]
    assert fill == {"T1000": COVERAGE_GRADIENT[-1], "T2000": "#ffffff"}
    assert "Run <script>" in "".join(cells["T1000"].itertext())
    assert gradient_color(layer.gradient, 0) == COVERAGE_GRADIENT[0]  # type: ignore[arg-type]
    assert gradient_color(layer.gradient, 50) == COVERAGE_GRADIENT[1]  # type: ignore[arg-type]
