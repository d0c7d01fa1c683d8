"""A DeTT&CT technique administration file keeps its past: one backdated `logbook` point per date
of its score logbooks, then the import's own point; a second import adds no logbook point.

Expected values come from the file read with PyYAML and the raw 18.1 bundle read with json."""

from __future__ import annotations

import datetime as dt
from typing import Any

import yaml
from fastapi.testclient import TestClient

from tests.conftest import ROOT
from tests.history.conftest import WRITER, covered_now, history, raw_techniques, upload_catalog

SAMPLE = ROOT.parent / "shared" / "peers" / "dettect" / "techniques-administration-endpoints.yaml"
NAME = "endpoints-logbook"


def _day(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)[:10] if value else None


def logged() -> list[tuple[str, list[tuple[str, int]]]]:
    """Per detection entry of a technique 18.1 knows: (technique, its dated scores in the order
    written)."""
    assert SAMPLE.exists(), f"shared DeTT&CT sample missing: {SAMPLE}"
    doc = yaml.safe_load(SAMPLE.read_bytes())
    known = {t for t, raw in raw_techniques("18.1").items() if raw.status == "active"}
    out = []
    for technique in doc["techniques"]:
        if technique["technique_id"] not in known:
            continue
        entries = technique.get("detection") or []
        for entry in [entries] if isinstance(entries, dict) else entries:
            scores = [
                (day, s["score"])
                for s in entry.get("score_logbook") or []
                if (day := _day(s.get("date")))
            ]
            out.append((technique["technique_id"], scores))
    return out


def newest_covered(entries: list[tuple[str, list[tuple[str, int]]]]) -> set[str]:
    """Techniques with an entry whose newest dated score is 1 or more (a later date wins; on the
    same date the first written, as DeTT&CT reads it)."""
    covered = set()
    for technique, scores in entries:
        newest: tuple[str, int] | None = None
        for day, score in scores:
            if newest is None or day > newest[0]:
                newest = (day, score)
        if newest and newest[1] >= 1:
            covered.add(technique)
    return covered


def test_logbook_points_then_the_import(sqlite_client: TestClient) -> None:
    c = sqlite_client
    entries = logged()
    dates = sorted({day for _, scores in entries for day, _ in scores})
    assert len(dates) > 3
    upload_catalog(c, SAMPLE, name=NAME, format="dettect-techniques", version="18.1")
    points = history(c, catalog=NAME)
    causes = [p["cause"]["cause"] for p in points]
    assert causes == ["logbook"] * len(dates) + ["catalog_import"]
    assert [p["at"][:10] for p in points[:-1]] == dates
    assert points[-2]["covered"] == len(newest_covered(entries))
    assert points[-1]["covered"] == covered_now(c, catalog=NAME, version="18.1")
    importer = points[-1]["cause"]  # who brought the logbook in is each point's actor
    assert importer["actor"] == WRITER
    assert all(
        (p["cause"]["actor"], p["cause"]["audit_event"]) == (WRITER, importer["audit_event"])
        for p in points[:-1]
    )

    upload_catalog(c, SAMPLE, name=NAME, format="dettect-techniques", version="18.1")
    again = history(c, catalog=NAME)
    assert [p["cause"]["cause"] for p in again] == [*causes, "catalog_replace"]


TIED = """\
version: 1.2
file_type: technique-administration
name: tied
domain: enterprise-attack
platform: [Windows]
techniques:
- technique_id: T1059.001
  detection:
    applicable_to: [all]
    score_logbook:
    - {date: 2021-03-01, score: 0}
    - {date: 2021-03-01, score: 2}
- technique_id: T1053.005
  detection:
    applicable_to: [all]
    score_logbook:
    - {date: 2021-02-01, score: 3}
"""


def test_a_tie_on_one_date_is_read_as_the_import_reads_it(sqlite_client: TestClient) -> None:
    """Two scores on the same date: DeTT&CT (and the import) take the first written, so the last
    logbook point and the import's own point agree, and the import moves nothing."""
    c = sqlite_client
    r = c.post(
        "/api/v1/catalogs",
        files={"file": ("tied.yaml", TIED.encode())},
        data={"format": "dettect-techniques", "version": "18.1"},
    )
    assert r.status_code == 201, r.text
    points = history(c, catalog="tied")
    assert [p["cause"]["cause"] for p in points] == ["logbook", "logbook", "catalog_import"]
    assert points[-1]["covered"] == covered_now(c, catalog="tied", version="18.1") == 1
    assert [p["covered"] for p in points] == [1, 1, 1]
