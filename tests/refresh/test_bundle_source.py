"""An http(s) KBMAP_ATTACK_SOURCE that names a bundle, not an index, is the release to load, as
given: the first start and `kbmap refresh` fetch that URL, never MITRE's index instead."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.core.db import make_engine
from app.models import init_db
from app.refresh import service as refresh_service
from app.refresh.startup import ensure_attack_loaded
from tests.refresh.test_refresh import (
    FAST,
    ICS18,
    Reply,
    Server,
    loaded,
    make_settings,
    release_json,
    row_counts,
)

BUNDLE = "/ics-attack-18.1.json"


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.serve(BUNDLE, Reply(body=release_json(ICS18)))
    yield srv
    srv.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'kbmap.sqlite'}")
    init_db(eng)
    yield eng
    eng.dispose()


def test_refresh_loads_the_bundle_url_it_is_given(
    engine: Engine, server: Server, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, attack_source=server.url(BUNDLE))
    dry = refresh_service.refresh(engine, settings, dry_run=True, download_backoff=FAST)
    assert (dry.index, dry.summary) == (server.url(BUNDLE), "dry run: would fetch ics 18.1")
    assert row_counts(engine) == (0, 0, 0)
    report = refresh_service.refresh(engine, settings, download_backoff=FAST)
    assert report.summary == "fetched ics 18.1"
    assert [(f.domain, f.version, f.url) for f in report.fetched] == [
        ("ics", "18.1", server.url(BUNDLE))
    ]
    assert report.skipped == []
    assert loaded(engine) == [("ics", "18.1")]
    again = refresh_service.refresh(engine, settings, download_backoff=FAST)
    assert again.summary == "nothing new (ics 18.1 already loaded)"
    assert server.requests == [BUNDLE, BUNDLE, BUNDLE]  # that URL only: no index, no MITRE


def test_the_first_start_ingests_the_bundle_url(
    engine: Engine, server: Server, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, attack_source=server.url(BUNDLE))
    assert ensure_attack_loaded(engine, settings) == [
        f"loaded ATT&CK ics 18.1 from {server.url(BUNDLE)}"
    ]
    assert loaded(engine) == [("ics", "18.1")]
    assert server.requests == [BUNDLE]
