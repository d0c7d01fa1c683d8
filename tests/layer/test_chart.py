"""The trend chart (app/layer/chart.py) on hand-built histories: no database. The SVG is parsed
back with ElementTree, so a text that escaped its escaping would fail the parse."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from app.history.models import Cause, CoverageHistory, HistoryPoint, HistoryScope
from app.layer.chart import trend_svg
from app.layer.kinds.coverage import COVERAGE_GRADIENT
from app.layer.kinds.effective import STATES

NS = {"s": "http://www.w3.org/2000/svg"}
T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
SCOPE = HistoryScope(scope="catalog:cat", domain="enterprise", catalog="cat")


def point(n: int, at: datetime, *, effective: int | None = None, **cause: str) -> HistoryPoint:
    return HistoryPoint(
        at=at,
        cause=Cause(
            snapshot=int(at.timestamp()) % 100_000,
            at=at,
            cause=cause.pop("cause", "catalog_import"),
            actor=cause.pop("actor", "alice"),
            audit_event=None,
            catalog=cause.pop("catalog", "cat"),
            environment=cause.pop("environment", None),
            release="enterprise 18.1",
        ),
        release="enterprise 18.1",
        covered=n,
        effective=effective,
        covered_by_tactic={},
        effective_by_tactic=None if effective is None else {},
    )


def parse(history: CoverageHistory) -> ET.Element:
    raw = trend_svg(history)
    assert raw.startswith(b"<svg ") and b"<?xml" not in raw  # inline in a page as it is
    return ET.fromstring(raw)


def dots(svg: ET.Element, label: str) -> list[ET.Element]:
    return [c for c in svg.iter(f"{{{NS['s']}}}circle") if label in c.get("class", "").split()]


def texts(svg: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in svg.iter(f"{{{NS['s']}}}text")]


def test_no_points_is_a_small_valid_svg_saying_so() -> None:
    svg = parse(CoverageHistory(scope=SCOPE, tactics=[], points=[]))
    assert texts(svg) == ["no history yet"]


def test_one_point_is_drawn_and_labelled_at_its_end() -> None:
    svg = parse(CoverageHistory(scope=SCOPE, tactics=[], points=[point(398, T0)]))
    (dot,) = dots(svg, "covered")
    assert dot.get("fill") == COVERAGE_GRADIENT[-1]  # the matrix's fully covered green
    assert "covered 398" in texts(svg)
    tip = "".join(dot.itertext())
    assert "2025-03-01 09:30 UTC" in tip and "catalog import" in tip and "by alice" in tip


def test_points_are_spaced_by_time_and_drops_are_red() -> None:
    times = [T0, T0 + timedelta(days=1), T0 + timedelta(days=10)]
    svg = parse(
        CoverageHistory(
            scope=SCOPE,
            tactics=[],
            points=[point(10, times[0]), point(4, times[1]), point(6, times[2])],
        )
    )
    xs = [float(d.get("cx", "0")) for d in dots(svg, "covered")]
    assert abs((xs[1] - xs[0]) / (xs[2] - xs[0]) - 0.1) < 0.01
    assert [("loss" in d.get("class", "")) for d in dots(svg, "covered")] == [False, True, False]
    assert dots(svg, "loss")[0].get("fill") == STATES["blind"][0]
    assert "covered 4 (-6)" in "".join(dots(svg, "loss")[0].itertext())
    labels = texts(svg)
    assert "2025-03-01" in labels and "2025-03-11" in labels and "covered 6" in labels


def test_an_environment_has_two_lines_in_the_environment_page_colours() -> None:
    env = HistoryScope(scope="environment:lab", domain="enterprise", environment="lab")
    svg = parse(
        CoverageHistory(
            scope=env,
            tactics=[],
            points=[
                point(20, T0, effective=12, cause="environment_import", catalog=""),
                point(20, T0 + timedelta(hours=3), effective=15, cause="environment_replace"),
            ],
        )
    )
    assert {"covered 20", "effective 15"} <= set(texts(svg))
    assert dots(svg, "effective")[0].get("fill") == STATES["effective"][0]
    assert dots(svg, "covered")[0].get("fill") == STATES["rule_without_telemetry"][0]
    assert not dots(svg, "loss")


def test_user_text_is_escaped() -> None:
    evil = "<script>alert(1)</script> & co"
    scope = HistoryScope(scope="catalog:x", domain="enterprise", catalog=evil)
    raw = trend_svg(
        CoverageHistory(
            scope=scope, tactics=[], points=[point(3, T0, catalog=evil, actor=f"{evil}'\"")]
        )
    )
    assert b"<script" not in raw
    svg = ET.fromstring(raw)
    tip = "".join(dots(svg, "covered")[0].itertext())
    assert f"catalog {evil}" in tip and f"by {evil}'\"" in tip
    assert any(evil in t for t in texts(svg))
