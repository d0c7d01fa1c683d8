"""Placing a parsed environment in a release, pure: platforms, data components, log sources,
the quality factor, and the report of what did not place."""

from __future__ import annotations

import pytest

from app.environment.models import ParsedEnvironment, ParsedLogSource, ParsedSystem
from app.environment.resolve import Placer, ReleaseWords, quality_factor, resolve

pytestmark = pytest.mark.unit

WORDS = ReleaseWords(
    label="enterprise 18.1",
    components={
        "process creation": "Process Creation",
        "dc0032": "Process Creation",
        "logon session creation": "Logon Session Creation",
    },
    platforms={"windows": "Windows", "linux": "Linux"},
    log_sources={("wineventlog:security", "eventcode=4624"): frozenset({"Logon Session Creation"})},
    techniques=frozenset({"T1059", "T1557"}),
)


def _placer(rule_hits: dict[str, list[str]] | None = None) -> Placer:
    hits = rule_hits or {}
    return Placer(
        WORDS,
        lambda entry: hits.get(repr(sorted(entry.items())), []),
        lambda name, channel: {(name, channel)},
    )


def _env(*sources: ParsedLogSource, platforms: list[str] | None = None) -> ParsedEnvironment:
    return ParsedEnvironment(
        format_id="kbmap",
        systems=[ParsedSystem("ws", platforms or ["windows"]), ParsedSystem("srv", ["Linux"])],
        log_sources=list(sources),
        exceptions=["T1557", "T9999"],
    )


def _src(kind: str, value: str | dict[str, str], **kw: object) -> ParsedLogSource:
    return ParsedLogSource(systems=["ws"], kind=kind, value=value, **kw)  # type: ignore[arg-type]


def test_data_components_by_name_or_id_case_aside() -> None:
    out = resolve(
        _env(_src("data_component", "PROCESS creation"), _src("data_component", "DC0032")),
        _placer(),
    )
    assert [s.data_components for s in out.sources] == [["Process Creation"]] * 2
    assert out.report is not None and out.report.placed == 2


def test_attack_spelling_and_rule_log_sources() -> None:
    entry = {"product": "windows", "category": "process_creation"}
    placer = _placer({repr(sorted(entry.items())): ["Process Creation", "Not In Release"]})
    out = resolve(
        _env(_src("log_source", "WinEventLog:Security EventCode=4624"), _src("log_source", entry)),
        placer,
    )
    assert [s.data_components for s in out.sources] == [
        ["Logon Session Creation"],
        ["Process Creation"],
    ]


def test_what_does_not_place_is_reported_with_a_reason() -> None:
    out = resolve(
        _env(_src("data_component", "Web [DeTT&CT data source]"), _src("log_source", "who knows")),
        _placer(),
    )
    report = out.report
    assert report is not None
    assert [u.written for u in report.unplaced] == ["Web [DeTT&CT data source]", "who knows"]
    assert "DeTT&CT data source" in report.unplaced[0].reason
    assert len(out.sources) == 2  # kept, with no data component: nothing dropped
    assert report.exceptions == ["T1557"] and report.unknown_exceptions == ["T9999"]


def test_platforms_all_and_unknown() -> None:
    out = resolve(_env(platforms=["all", "Amiga"]), _placer())
    assert out.systems[0][1] == ["Linux", "Windows"]
    assert out.report is not None
    assert [u.written for u in out.report.unknown_platforms] == ["Amiga"]


def test_all_systems_and_what_is_not_counted() -> None:
    src = ParsedLogSource(
        systems=["all"],
        kind="data_component",
        value="Process Creation",
        quality=dict.fromkeys(("timeliness", "retention"), 0),
    )
    off = ParsedLogSource(
        systems=["srv"], kind="data_component", value="Process Creation", available=False
    )
    out = resolve(_env(src, off), _placer())
    assert [(s.system, s.counted) for s in out.sources] == [(0, False), (1, False), (1, False)]
    assert out.report is not None and len(out.report.not_counted) == 2


@pytest.mark.parametrize(
    ("quality", "factor"),
    [(None, 1.0), ({}, 1.0), ({"timeliness": 5}, 1.0), ({"timeliness": 1, "retention": 3}, 0.4)],
)
def test_quality_factor(quality: dict[str, int] | None, factor: float) -> None:
    assert quality_factor(quality) == factor
