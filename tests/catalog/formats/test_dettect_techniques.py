"""DeTT&CT technique administration files: the shared samples imported for real, and small files
built here for the edges. Expected numbers come from yaml.safe_load of the raw files and from the
gzipped ATT&CK bundles, not from the importer."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from app.catalog import registry
from app.catalog import service as catalog_service
from app.catalog.formats.dettect_techniques import DettectTechniquesImporter
from app.catalog.source import open_source, source_from_bytes
from app.core.config import Limits, Settings
from app.core.db import make_engine

PEERS = Path(__file__).resolve().parents[4] / "shared" / "peers" / "dettect"
ATTACK = Path(__file__).resolve().parents[4] / "shared" / "attack"
SAMPLES = {"endpoints": "enterprise", "ics": "ics", "mobile": "mobile"}
IMPORTER = DettectTechniquesImporter()
LIMITS = Limits()
SEVERITY = {1: "informational", 2: "low", 3: "medium", 4: "high", 5: "critical"}


def sample(kind: str) -> Path:
    return PEERS / f"techniques-administration-{kind}.yaml"


def raw(kind: str) -> dict[str, Any]:
    import yaml

    doc: dict[str, Any] = yaml.safe_load(sample(kind).read_text(encoding="utf-8"))
    return doc


def day(value: Any) -> str | None:
    if value is None:
        return None
    return (value.date() if isinstance(value, dt.datetime) else value).isoformat()


def newest_score(entry: dict[str, Any]) -> int:
    """Newest by date, undated oldest, first among equals (computed apart from the importer)."""
    log = entry["score_logbook"]
    dated = [(day(s["date"]), -i, s["score"]) for i, s in enumerate(log) if s["date"]]
    return max(dated)[2] if dated else log[0]["score"]


def bundle_ids(domain: str) -> tuple[set[str], set[str]]:
    """All technique ids of the 18.1 bundle, and those neither revoked nor deprecated."""
    with gzip.open(ATTACK / f"{domain}-attack-18.1.json.gz") as f:
        objects = json.load(f)["objects"]
    every, live = set(), set()
    for o in objects:
        if o.get("type") != "attack-pattern":
            continue
        ext = next(
            r["external_id"]
            for r in o["external_references"]
            if r.get("source_name", "").startswith("mitre")
        )
        every.add(ext)
        if not o.get("revoked") and not o.get("x_mitre_deprecated"):
            live.add(ext)
    return every, live


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_sample_imports_with_counts_from_the_raw_file(loaded_settings: Settings, kind: str) -> None:
    doc, domain = raw(kind), SAMPLES[kind]
    entries = [(t["technique_id"], e) for t in doc["techniques"] for e in t["detection"]]
    techniques = {t["technique_id"] for t in doc["techniques"]}
    every, live = bundle_ids(domain)
    unknown_rules = sum(1 for tid, _ in entries if tid not in every)
    engine = make_engine(loaded_settings.database_url)
    result = catalog_service.import_catalog(
        engine, loaded_settings, source=open_source(sample(kind), loaded_settings.limits)
    )
    cat = result.catalog
    assert cat.format_id == "dettect-techniques"
    assert cat.name == doc["name"].replace(" ", "-")
    assert (cat.domain, cat.attack_version) == (domain, "18.1")
    assert cat.rule_count == len(entries)
    assert cat.report.distinct_techniques_written == len(techniques)
    assert cat.report.outcomes.unknown == unknown_rules
    assert cat.report.rules_with_unknown == unknown_rules
    if kind == "endpoints":  # the v19 ids of the sample, reported, never dropped
        assert unknown_rules > 0 and "T1685" in techniques - every
    covered = {tid for tid, e in entries if newest_score(e) >= 1 and tid in live}
    assert _covered(loaded_settings, cat.name, domain) == len(covered)


def _covered(settings: Settings, name: str, domain: str) -> int:
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(settings)) as client:
        r = client.get("/api/v1/coverage", params={"catalog": name, "domain": domain})
    assert r.status_code == 200, r.text
    covered: int = r.json()["all"]["covered"]
    return covered


def test_newest_dated_score_sets_severity_and_enabled() -> None:
    doc = raw("endpoints")
    picked = next(
        (t, e)
        for t in doc["techniques"]
        for e in t["detection"]
        if len({s["date"] for s in e["score_logbook"] if s["date"]}) > 1
    )
    tech, entry = picked
    expected = newest_score(entry)
    assert expected != entry["score_logbook"][0]["score"]  # newest, not first written
    parsed = IMPORTER.parse(open_source(sample("endpoints"), LIMITS), LIMITS)
    rid = f"{tech['technique_id']}:{'+'.join(entry['applicable_to'])}"
    rule = next(r for r in parsed.rules if r.rule_id == rid)
    assert rule.severity == SEVERITY.get(expected)
    assert rule.enabled is (expected >= 1)
    assert rule.status == "stable"
    assert rule.title == f"{tech['technique_name']} ({', '.join(entry['applicable_to'])})"
    assert rule.extra["location"] == entry["location"]
    dates = [s["date"] for s in rule.extra["score_logbook"]]
    assert dates == sorted(dates, key=lambda d: (d is not None, d or ""))
    assert {(day(s["date"]), s["score"]) for s in entry["score_logbook"]} == {
        (s["date"], s["score"]) for s in rule.extra["score_logbook"]
    }


def test_every_rule_of_a_sample_follows_the_table() -> None:
    doc = raw("endpoints")
    parsed = IMPORTER.parse(open_source(sample("endpoints"), LIMITS), LIMITS)
    by_id = {r.rule_id: r for r in parsed.rules}
    for tech in doc["techniques"]:
        for entry in tech["detection"]:
            rule = by_id[f"{tech['technique_id']}:{'+'.join(entry['applicable_to'])}"]
            score = newest_score(entry)
            assert (rule.severity, rule.enabled) == (SEVERITY.get(score), score >= 1)
            assert rule.platforms == doc["platform"]
    assert not [i for i in parsed.issues if i.severity == "error"]


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_detection_picks_this_format_for_samples_only(kind: str) -> None:
    assert registry.detect(open_source(sample(kind), LIMITS)).format_id == "dettect-techniques"
    others = [p for p in PEERS.glob("*.yaml") if not p.name.startswith("techniques-")]
    assert others
    for path in others:
        assert not IMPORTER.sniff(open_source(path, LIMITS)), path.name


def test_utf16_copy_parses_the_same() -> None:
    data = sample("mobile").read_bytes()
    utf16 = data.decode("utf-8").encode("utf-16")
    source = source_from_bytes("mobile.yaml", utf16, LIMITS)
    assert registry.detect(source).format_id == "dettect-techniques"
    again = IMPORTER.parse(source, LIMITS)
    first = IMPORTER.parse(open_source(sample("mobile"), LIMITS), LIMITS)
    assert [(r.rule_id, r.severity, r.enabled, r.extra) for r in again.rules] == [
        (r.rule_id, r.severity, r.enabled, r.extra) for r in first.rules
    ]
    assert again.name == first.name and not again.issues


def test_utf16_copy_imports_the_same(loaded_settings: Settings) -> None:
    engine = make_engine(loaded_settings.database_url)
    data = sample("ics").read_bytes().decode("utf-8").encode("utf-16")
    source = source_from_bytes("ics.yaml", data, loaded_settings.limits)
    cat = catalog_service.import_catalog(engine, loaded_settings, source=source).catalog
    assert cat.rule_count == len(raw("ics")["techniques"])
    assert cat.name == "example-techniques-ICS" and cat.domain == "ics"


SMALL = """version: 1.2
file_type: technique-administration
name: example
domain: enterprise-attack
platform: Windows
colour: blue
techniques:
- technique_id: T1059
  technique_name: Command and Scripting Interpreter
  detection:
  - applicable_to: [servers]
    location: [SIEM]
    comment: hand kept
    score_logbook:
    - {date: 2020-01-01, score: 5, comment: old}
    - {date: 2022-02-02, score: 0, comment: newest}
    - {date: null, score: 1, comment: undated}
  - applicable_to: [laptops, desktops]
    score_logbook:
    - {date: 2021-03-04, score: {bad: 1}, comment: ''}
  visibility:
  - applicable_to: [servers]
    score_logbook:
    - {date: 2021-01-01, score: 2, comment: '', auto_generated: true}
"""


def _small(text: str) -> Any:
    return IMPORTER.parse(source_from_bytes("t.yaml", text.encode(), LIMITS), LIMITS)


def test_small_file_newest_zero_disables_and_problems_are_located() -> None:
    parsed = _small(SMALL)
    rule = parsed.rules[0]
    assert rule.rule_id == "T1059:servers" and rule.enabled is False and rule.severity is None
    assert rule.description == "hand kept" and rule.platforms == ["Windows"]
    assert [s["date"] for s in rule.extra["score_logbook"]] == [None, "2020-01-01", "2022-02-02"]
    assert rule.extra["visibility_logbook"][0]["score"] == 2
    assert parsed.rules[1].rule_id == "T1059:laptops+desktops"
    errors = [i for i in parsed.issues if i.severity == "error"]
    assert len(errors) == 1
    assert errors[0].location.field == "techniques[0].detection[1].score_logbook[0].score"
    assert errors[0].location.line == 18
    warns = [i for i in parsed.issues if i.severity == "warning"]
    assert [(w.location.field, w.location.line) for w in warns] == [("colour", 6)]


def test_wrong_types_are_errors_naming_the_field() -> None:
    text = SMALL.replace("platform: Windows", "platform: {a: 1}").replace(
        "name: example", "name: [x]"
    )
    fields = {i.location.field for i in _small(text).issues if i.severity == "error"}
    assert {"platform", "name"} <= fields
    bad_domain = _small(SMALL.replace("enterprise-attack", "pre-attack"))
    assert any("enterprise-attack" in i.message for i in bad_domain.issues)


def test_older_version_reads_as_dettect_upgrades_it() -> None:
    text = """version: 1.1
file_type: technique-administration
name: old
domain: enterprise-attack
platform: [all]
techniques:
- technique_id: T1003
  technique_name: OS Credential Dumping
  detection:
    applicable_to: [all]
    date_registered: 2019-01-01
    date_implemented: 2019-02-01
    score: 3
    location: [EDR]
  visibility:
    applicable_to: [all]
    score: 2
"""
    parsed = _small(text)
    assert not parsed.issues
    rule = parsed.rules[0]
    assert (rule.rule_id, rule.severity) == ("T1003:all", "medium")
    assert rule.extra["score_logbook"] == [{"date": "2019-02-01", "score": 3, "comment": ""}]


def test_alias_bomb_is_an_error_not_a_hang() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    text = "file_type: technique-administration\n" + bomb
    parsed = _small(text)
    assert parsed.rules == [] and parsed.issues[0].severity == "error"
