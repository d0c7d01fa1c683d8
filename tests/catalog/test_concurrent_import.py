"""Two first imports of the same new catalog name at once: one wins, the other is a Conflict."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from app.attack.ingest import ingest_sources
from app.catalog import importing as catalog_importing
from app.catalog import service as catalog_service
from app.catalog.source import source_from_bytes
from app.core.config import Limits, Settings
from app.core.errors import Conflict, KbmapError
from tests.conftest import attack_file

DOC = b"name: race\nattack: {domain: ics}\nrules:\n  - id: R-1\n    title: one\n    techniques: [T0807]\n"


def test_two_first_imports_at_once_one_wins_one_conflicts(
    empty_engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ingest_sources(empty_engine, [attack_file("ics-attack-18.1.json.gz")], limits=Limits())
    # both imports choose their release, then wait for each other: neither has written yet, so
    # each sees no catalog `race` and goes on to create it
    barrier = threading.Barrier(2, timeout=30)
    pick = catalog_importing.pick_release

    def pick_then_wait(*args: object, **kwargs: object) -> object:
        found = pick(*args, **kwargs)  # type: ignore[arg-type]
        barrier.wait()
        return found

    monkeypatch.setattr(catalog_importing, "pick_release", pick_then_wait)
    outcomes: list[object] = []

    def run() -> None:
        try:
            source = source_from_bytes("race.yaml", DOC, settings.limits)
            outcomes.append(
                catalog_service.import_catalog(empty_engine, settings, source=source).catalog.name
            )
        except KbmapError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    names = [o for o in outcomes if o == "race"]
    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    assert (len(names), len(conflicts)) == (1, 1), outcomes
    assert "race" in str(conflicts[0]) and "at the same time" in str(conflicts[0])
    with Session(empty_engine) as s:
        assert catalog_service.get_catalog(s, name="race").rule_count == 1
