"""Environment parsers: DeTT&CT samples and 1.0 files, kbmap YAML/JSON/CSV, the documented
examples against the schema, and hostile input."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from app.core.config import Limits
from app.core.errors import InvalidInput, TooLarge
from app.environment.formats import FORMAT_IDS, FORMATS, detect, parse_environment
from app.environment.models import ALL_SYSTEMS, ParsedEnvironment

ROOT = Path(__file__).resolve().parents[2]
DETTECT = ROOT.parent / "shared" / "peers" / "dettect"
SAMPLES = sorted(DETTECT.glob("data-sources-*.yaml"))
SCHEMA = json.loads((ROOT / "kb" / "schemas" / "environment.schema.json").read_text())
DOC = (ROOT / "docs" / "environments.md").read_text()
LIMITS = Limits()


def parse(name: str, text: str | bytes, **kw: Any) -> ParsedEnvironment:
    data = text.encode() if isinstance(text, str) else text
    return parse_environment(name, data, limits=kw.pop("limits", LIMITS), **kw)


def doc_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, re.S)


def without_lines(env: ParsedEnvironment) -> ParsedEnvironment:
    """The environment as written, apart from where: line numbers differ between spellings."""
    systems = [dataclasses.replace(s, line=None) for s in env.systems]
    sources = [dataclasses.replace(s, line=None) for s in env.log_sources]
    return dataclasses.replace(env, systems=systems, log_sources=sources, issues=[])


def refused(name: str, text: str | bytes, *needles: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse(name, text)
    shown = str(info.value) + " ".join(str(i) for i in info.value.issues)
    for needle in needles:
        assert needle in shown, (needle, shown)
    return info.value


# ---- DeTT&CT ----


def test_three_samples_exist() -> None:
    assert [p.name for p in SAMPLES] == [
        "data-sources-endpoints.yaml",
        "data-sources-ics.yaml",
        "data-sources-mobile.yaml",
    ]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_dettect_sample_parses(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    env = parse(path.name, path.read_bytes())
    assert detect(path.name, path.read_bytes()) == "dettect"
    assert env.format_id == "dettect" and env.name == raw["name"]
    assert env.domain == raw["domain"].removesuffix("-attack")
    assert env.description == raw["notes"]
    assert [(s.name, s.platforms) for s in env.systems] == [
        (s["applicable_to"], s["platform"]) for s in raw["systems"]
    ]
    details = [(ds["data_source_name"], d) for ds in raw["data_sources"] for d in ds["data_source"]]
    assert len(env.log_sources) == len(details)
    for ls, (name, d) in zip(env.log_sources, details, strict=True):
        assert ls.kind == "data_component" and ls.value == name
        expected = (
            [ALL_SYSTEMS]
            if [a.lower() for a in d["applicable_to"]] == ["all"]
            else d["applicable_to"]
        )
        assert ls.systems == expected
        assert ls.since == d["date_connected"].date().isoformat()
        assert ls.quality == d["data_quality"] and ls.available == d["available_for_data_analytics"]
        assert ls.products == d["products"]
    assert env.exceptions == [e["technique_id"] for e in raw.get("exceptions", [])]
    assert not [i for i in env.issues if i.severity == "error"]


def test_endpoints_sample_names_and_all() -> None:
    path = DETTECT / "data-sources-endpoints.yaml"
    raw = yaml.safe_load(path.read_text())
    env = parse(path.name, path.read_bytes())
    assert {ls.value for ls in env.log_sources} == {
        ds["data_source_name"] for ds in raw["data_sources"]
    }
    alls = sum(
        d["applicable_to"] == ["all"] for ds in raw["data_sources"] for d in ds["data_source"]
    )
    assert alls > 0 and sum(ls.systems == [ALL_SYSTEMS] for ls in env.log_sources) == alls


V10 = """\
version: 1.0
file_type: data-source-administration
name: old style
platform: [Windows, Linux]
data_sources:
  - data_source_name: Process Creation
    date_registered: 2019-01-01
    date_connected: 2018-12-24
    products: [Sysmon, null]
    available_for_data_analytics: true
    comment: "since Xmas"
    data_quality:
      device_completeness: 5
      data_field_completeness: 4
      timeliness: 3
      consistency: 2
      retention: 0
  - data_source_name: Logon Session Creation
    date_registered:
    date_connected:
    products: [None]
    available_for_data_analytics: false
    comment: ''
    data_quality: {device_completeness: 0, data_field_completeness: 0, timeliness: 0, consistency: 0, retention: 0}
exceptions:
  - technique_id: t1003
  - technique_id:
"""


def test_dettect_v10() -> None:
    env = parse("old.yaml", V10)
    assert env.format_id == "dettect" and env.domain == "enterprise" and env.name == "old style"
    assert [(s.name, s.platforms) for s in env.systems] == [("all systems", ["Windows", "Linux"])]
    first, second = env.log_sources
    assert (first.value, first.systems, first.since) == (
        "Process Creation",
        [ALL_SYSTEMS],
        "2018-12-24",
    )
    assert first.products == ["Sysmon"] and first.comment == "since Xmas"
    assert first.quality == {
        "device_completeness": 5,
        "data_field_completeness": 4,
        "timeliness": 3,
        "consistency": 2,
        "retention": 0,
    }
    assert (second.since, second.available, second.products) == (None, False, ["None"])
    assert second.quality is not None and set(second.quality.values()) == {0}
    assert env.exceptions == ["T1003"]


def test_dettect_v10_without_platform_is_all() -> None:
    text = V10.replace("platform: [Windows, Linux]\n", "")
    assert [s.platforms for s in parse("old.yaml", text).systems] == [[ALL_SYSTEMS]]


def test_dettect_single_details_mapping_and_case() -> None:
    text = """\
version: 1.1
file_type: data-source-administration
name: x
domain: ics-attack
systems:
  - applicable_to: Workstations
    platform: Engineering Workstation
data_sources:
  - data_source_name: Process Creation
    data_source:
      applicable_to: [workstations]
      date_connected: "2021-11-09"
      data_quality: {retention: 2}
"""
    env = parse("ics.yaml", text)
    assert env.systems[0].platforms == ["Engineering Workstation"]
    assert env.log_sources[0].systems == ["Workstations"]
    assert env.log_sources[0].quality == {"retention": 2}


def test_dettect_applicable_to_unknown_system() -> None:
    path = DETTECT / "data-sources-endpoints.yaml"
    text = path.read_text().replace("- Linux servers", "- Mac laptops", 1)
    refused(path.name, text, "'Mac laptops'", "Windows workstations")


def test_dettect_bad_quality_and_version() -> None:
    path = DETTECT / "data-sources-mobile.yaml"
    refused(
        path.name,
        path.read_text().replace("timeliness: 1", "timeliness: 9"),
        "timeliness",
        "'API Calls'",
    )
    refused(
        path.name, path.read_text().replace("version: 1.1", "version: 2.0"), "version", "1.0, 1.1"
    )


def test_dettect_forced_on_other_file() -> None:
    with pytest.raises(InvalidInput, match="not a DeTT&CT"):
        parse("x.yaml", "systems: []\n", format_id="dettect")


# ---- kbmap: the documented example in three spellings ----


def test_doc_examples_validate_and_agree() -> None:
    (yaml_text,) = doc_blocks("yaml")
    (json_text,) = doc_blocks("json")
    (csv_text,) = doc_blocks("csv")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    validator.validate(yaml.safe_load(yaml_text))
    validator.validate(json.loads(json_text))
    parsed = [
        parse("env.yaml", yaml_text),
        parse("env.json", json_text),
        parse("env.csv", csv_text),
    ]
    assert without_lines(parsed[0]) == without_lines(parsed[1]) == without_lines(parsed[2])
    raw = yaml.safe_load(yaml_text)
    env = parsed[0]
    assert [s.name for s in env.systems] == [s["name"] for s in raw["systems"]]
    assert len(env.log_sources) == sum(len(s.get("log_sources", [])) for s in raw["systems"])
    assert env.exceptions == raw["exceptions"] and env.domain == raw["domain"]


def test_doc_example_values() -> None:
    env = parse("env.yaml", doc_blocks("yaml")[0])
    values = [ls.value for ls in env.log_sources]
    assert {"service": "security", "event_id": "4624"} in values
    assert "WinEventLog:Security EventCode=4624" in values
    assert {"index": "logs-endpoint.events.process-*"} in values
    first = env.log_sources[0]
    assert (first.kind, first.since, first.products) == ("data_component", "2024-01-01", ["Sysmon"])
    assert env.log_sources[1].available is False
    assert env.systems[-1].name == "Network" and not [
        ls for ls in env.log_sources if ls.systems == ["Network"]
    ]


def test_auto_detects_kbmap_without_suffix() -> None:
    (yaml_text,) = doc_blocks("yaml")
    (json_text,) = doc_blocks("json")
    (csv_text,) = doc_blocks("csv")
    for text in (yaml_text, json_text, csv_text):
        assert detect("upload", text.encode()) == "kbmap"
        assert without_lines(parse("upload", text)) == without_lines(parse("env.yaml", yaml_text))


def test_yaml_date_and_datetime() -> None:
    base = "systems:\n  - name: a\n    platforms: [Linux]\n    log_sources:\n      - data_component: X\n        since: {}\n"
    assert parse("e.yaml", base.format("2024-02-03")).log_sources[0].since == "2024-02-03"
    assert parse("e.yaml", base.format("2024-02-03T10:00:00Z")).log_sources[0].since == "2024-02-03"
    refused("e.yaml", base.format("'last spring'"), "since")


# ---- refused input ----

GOOD = "systems:\n  - name: Windows workstations\n    platforms: [Windows]\n    log_sources:\n      - data_component: Process Creation\n"


def test_utf16_with_bom_parses_the_same() -> None:
    assert parse("e.yaml", GOOD.encode("utf-16")) == parse("e.yaml", GOOD)
    assert parse("e.yaml", "\ufeff".encode() + GOOD.encode()) == parse("e.yaml", GOOD)


def test_control_characters_in_names_refused() -> None:
    refused(
        "e.yaml",
        GOOD.replace("Windows workstations", '"Win\\u0007dows"'),
        "control characters",
        "name",
    )
    refused("e.csv", "system,platforms\nA\x1bB,Linux\n", "control characters")


def test_deep_nesting_refused_cleanly() -> None:
    deep = "systems: " + "[" * 10_000 + "]" * 10_000 + "\n"
    refused("e.yaml", deep)
    refused("e.json", '{"systems": ' + "[" * 10_000 + "]" * 10_000 + "}")
    refused("e.yaml", "systems: " + "[" * 100 + "]" * 100 + "\n", "nested deeper")


def test_alias_bomb_refused() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [
        f"{n}: &{n} [{','.join(['*' + p] * 10)}]"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    with pytest.raises(InvalidInput, match="alias"):
        parse("bomb.yaml", "\n".join(lines) + "\nsystems: *i\n")


def test_huge_input_too_large() -> None:
    with pytest.raises(TooLarge):
        parse("e.yaml", GOOD + "#" * 2000, limits=Limits(max_upload_bytes=1000))


def test_wrong_types_name_the_field() -> None:
    error = refused("e.yaml", GOOD.replace("[Windows]", "5"), "systems[0].platforms")
    assert error.location is not None and error.location.field == "systems[0].platforms"
    refused(
        "e.yaml",
        GOOD + "        quality: {timeliness: 6}\n",
        "timeliness",
        "'Process Creation'",
        "Windows workstations",
    )
    refused("e.yaml", GOOD + "        quality: {timeliness: true}\n", "timeliness")
    refused("e.yaml", GOOD + "        available: maybe\n", "available")
    refused("e.yaml", GOOD + "domain: pre\n", "domain", "enterprise, mobile, ics")
    refused("e.yaml", GOOD + "exceptions: [X1]\n", "exceptions[0]")
    refused("e.yaml", "- a\n- b\n", "mapping")


def test_unknown_keys_refused_everywhere() -> None:
    refused("e.yaml", GOOD + "colour: blue\n", "'colour'", "allowed: name, domain")
    refused(
        "e.yaml", GOOD.replace("    platforms", "    os: x\n    platforms"), "'os'", "log_sources"
    )
    refused("e.yaml", GOOD + "        source: x\n", "'source'", "data_component, log_source")
    refused("e.yaml", GOOD + "        quality: {speed: 1}\n", "'speed'", "retention")
    text = GOOD.replace(
        "data_component: Process Creation", "log_source: {product: windows, vendor: ms}"
    )
    refused("e.yaml", text, "'vendor'", "product, category")
    refused("e.csv", "system,platforms,colour\na,Linux,blue\n", "'colour'", "system, platforms")
    refused("e.csv", "system,platforms,log_source\na,Linux,vendor=ms\n", "'vendor'")


def test_exactly_one_source_and_duplicates() -> None:
    refused("e.yaml", GOOD + "        log_source: x\n", "exactly one of data_component, log_source")
    two = GOOD + "  - name: WINDOWS WORKSTATIONS\n    platforms: [Windows]\n"
    refused("e.yaml", two, "duplicate system name")
    refused("e.yaml", GOOD.replace("Windows workstations", "All"), "reserved")
    refused("e.csv", "system,platforms,since\na,Linux,2024-01-01\n", "exactly one of")


def test_csv_platforms_rules() -> None:
    env = parse(
        "e.csv", "system,platforms,data_component\na,Linux;macOS,X\na,,Y\na,Linux;macOS,Z\n"
    )
    assert env.systems[0].platforms == ["Linux", "macOS"] and len(env.log_sources) == 3
    refused(
        "e.csv", "system,platforms,data_component\na,Linux,X\na,Windows,Y\n", "platforms", "line 2"
    )
    refused("e.csv", "system,platforms,data_component\na,,X\n", "platforms required")
    with pytest.raises(InvalidInput, match="'system' column"):
        parse("e.csv", "platforms,data_component\nLinux,X\n")


def test_many_errors_reported_together() -> None:
    text = GOOD + "        quality: {timeliness: 6}\ncolour: blue\n"
    error = refused("e.yaml", text)
    assert len(error.issues) == 2 and "(and 1 more)" in error.message


def test_unknown_format_lists_known() -> None:
    with pytest.raises(InvalidInput) as info:
        parse("e.yaml", GOOD, format_id="splunk")
    for known in ("auto", *FORMAT_IDS):
        assert known in info.value.message
    assert set(FORMAT_IDS) == set(FORMATS) == {"kbmap", "dettect"}


BAD_DOCS = {
    "unknown top key": {"systems": [], "colour": "blue"},
    "platforms not a list": {"systems": [{"name": "a", "platforms": 5}]},
    "no platforms": {"systems": [{"name": "a"}]},
    "both sources": {
        "systems": [
            {
                "name": "a",
                "platforms": ["Linux"],
                "log_sources": [{"data_component": "X", "log_source": "Y"}],
            }
        ]
    },
    "quality out of range": {
        "systems": [
            {
                "name": "a",
                "platforms": ["Linux"],
                "log_sources": [{"data_component": "X", "quality": {"retention": 6}}],
            }
        ]
    },
    "unknown log-source key": {
        "systems": [
            {"name": "a", "platforms": ["Linux"], "log_sources": [{"log_source": {"vendor": "x"}}]}
        ]
    },
    "reserved system name": {"systems": [{"name": "all", "platforms": ["Linux"]}]},
    "control character": {"systems": [{"name": "a\u0007b", "platforms": ["Linux"]}]},
}


@pytest.mark.parametrize("doc", BAD_DOCS.values(), ids=BAD_DOCS.keys())
def test_schema_and_parser_refuse_alike(doc: dict[str, Any]) -> None:
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(doc)
    with pytest.raises(InvalidInput):
        parse("e.json", json.dumps(doc))


def test_csv_meta_and_bom() -> None:
    (csv_text,) = doc_blocks("csv")
    assert parse("e.csv", csv_text.encode("utf-16")) == parse("e.csv", csv_text)
    assert parse("e.csv", csv_text).name == "corp-soc"
    refused("e.csv", "# owner: me\n" + csv_text, "'# key: value'", "name, domain")
