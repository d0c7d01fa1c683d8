"""Recording: every change that can move coverage leaves one snapshot, with its cause, its actor
from the audit log and a reason per technique, in the change's own transaction.

Expected values come from /coverage, /coverage/techniques and /audit (not the history's code),
and from the raw STIX bundles read with json (which technique a release revoked, and by what).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from app.attack.ingest import ingest_sources
from app.catalog import importing as catalog_importing
from app.catalog import service as catalog_service
from app.catalog.source import open_source
from app.core.config import Limits, Settings
from app.core.db import make_engine
from app.core.errors import NotFound
from app.history import recording
from app.history import service as history_service
from app.history.tables import CoverageCurrent, CoverageDelta, CoverageSnapshot
from app.models import init_db
from tests.conftest import attack_file
from tests.history.conftest import (
    API,
    SIGMA18,
    WRITER,
    changes,
    copy_of_loaded,
    covered_now,
    engine_of,
    history,
    import_sigma18,
    make_client,
    ok,
    raw_techniques,
    settings_for,
    sigma_subset,
    technique_rows,
    upload_catalog,
    upload_text,
)


def all_changes(client: TestClient, **params: Any) -> dict[str, Any]:
    """/coverage/changes with every page of `changes` joined."""
    first = changes(client, limit=1000, **params)
    items = list(first["items"])
    while len(items) < first["total"]:
        items += changes(client, limit=1000, offset=len(items), **params)["items"]
    return {**first, "items": items}


def covered_set(client: TestClient, **params: str) -> set[str]:
    return {r["id"] for r in technique_rows(client, **params) if r["covered"]}


def audit_events(client: TestClient) -> dict[int, dict[str, Any]]:
    page = ok(client.get(f"{API}/audit", params={"limit": 1000}))
    return {e["id"]: e for e in page["items"]}


# --- must-show 1: import, delete, import ---------------------------------------------------------


def test_import_delete_import_reads_n_then_0_then_n(backend_client: TestClient) -> None:
    c = backend_client
    import_sigma18(c)
    n = covered_now(c)
    techniques = covered_set(c)
    assert n == len(techniques) > 100
    ok(c.delete(f"{API}/catalogs/{SIGMA18}"), 204)
    assert_kept_after_the_delete(c, n)
    import_sigma18(c)
    assert covered_now(c) == n

    points = history(c)
    assert [(p["cause"]["cause"], p["covered"]) for p in points] == [
        ("catalog_import", n),
        ("catalog_delete", 0),
        ("catalog_import", n),
    ]
    events = audit_events(c)
    for point, action in zip(points, ["POST /catalogs", "DELETE", "POST /catalogs"], strict=True):
        event = events[point["cause"]["audit_event"]]
        assert event["action"].startswith(action) and event["outcome"] == "ok"
        assert point["cause"]["actor"] == event["actor"] == WRITER
        assert point["cause"]["catalog"] == SIGMA18

    since = points[0]["cause"]["snapshot"]
    moved = all_changes(c, since=since)
    kinds = [x["change"] for x in moved["items"]]
    assert kinds == ["lost"] * n + ["gained"] * n
    assert (moved["lost"], moved["gained"], moved["total"]) == (n, n, 2 * n)
    lost = [x for x in moved["items"] if x["change"] == "lost"]
    gained = [x for x in moved["items"] if x["change"] == "gained"]
    assert {x["technique"] for x in lost} == {x["technique"] for x in gained} == techniques
    assert all(f"catalog deleted ({SIGMA18})" in x["reason"] for x in lost)
    assert all(x["cause"]["cause"] == "catalog_delete" for x in lost)
    assert all(x["reason"].startswith("rule added (") for x in gained)
    assert moved["net_gained"] == moved["net_lost"] == []
    assert moved["since"]["snapshot"] == since


def assert_kept_after_the_delete(c: TestClient, n: int) -> None:
    """A deleted catalog keeps its history; a catalog never recorded is a 404 naming those
    that were."""
    points = history(c, catalog=SIGMA18)
    assert [(p["cause"]["cause"], p["covered"]) for p in points] == [
        ("catalog_import", n),
        ("catalog_delete", 0),
    ]
    assert points[-1]["release"] == "enterprise 18.1"
    r = c.get(f"{API}/coverage/history", params={"catalog": "never-imported"})
    assert r.status_code == 404, r.text
    message = r.json()["error"]["message"]
    assert "never-imported" in message and SIGMA18 in message


# --- must-show 2: an upgrade names the revocation ------------------------------------------------

SIDELOAD16 = """\
name: sideload16
attack:
  domain: enterprise
  version: "16.1"
rules:
  - id: R-1
    title: DLL side-loading
    techniques: [T1574.002]
  - id: R-2
    title: PowerShell
    techniques: [T1059.001]
"""


def test_upgrade_names_the_revocation(backend_client: TestClient) -> None:
    raw16, raw17 = raw_techniques("16.1"), raw_techniques("17.1")
    assert raw16["T1574.002"].status == "active" and raw17["T1059.001"].status == "active"
    assert raw17["T1574.002"].status == "revoked"
    by = raw17["T1574.002"].revoked_by
    assert by == "T1574.001"
    c = backend_client
    assert upload_text(c, "sideload16.yaml", SIDELOAD16)["attack_version"] == "16.1"
    [imported] = history(c, catalog="sideload16")
    report = ok(c.post(f"{API}/catalogs/sideload16/upgrade", params={"to": "17.1"}))
    assert report["to_version"] == "17.1"

    moved = all_changes(c, catalog="sideload16", since=imported["cause"]["snapshot"])
    why = f"remapped (T1574.002 revoked by {by})"
    assert sorted((x["technique"], x["change"]) for x in moved["items"]) == [
        (by, "gained"),
        ("T1574.002", "lost"),
    ]
    for x in moved["items"]:
        assert x["reason"].startswith(why) and "R-1" in x["reason"], x
        assert x["cause"]["cause"] == "catalog_upgrade" and x["cause"]["release"] == (
            "enterprise 17.1"
        )
    last = history(c, catalog="sideload16")[-1]
    assert last["release"] == "enterprise 17.1"
    assert last["covered"] == covered_now(c, catalog="sideload16", version="17.1") == 2


# --- must-show 4a: the record commits with the change, or neither does ---------------------------

SMALL = """\
name: small
attack:
  domain: enterprise
  version: "18.1"
rules:
  - id: R-1
    title: PowerShell
    techniques: [T1059.001]
  - id: R-2
    title: Scheduled task
    techniques: [T1053.005]
"""


SETTINGS: dict[Engine, Settings] = {}


@pytest.fixture
def recorded_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A SQLite copy of the loaded database with the recorder attached, as the entry points do."""
    settings = settings_for(copy_of_loaded("sqlite", request, tmp_path))
    engine = make_engine(settings.database_url)
    history_service.attach(engine, settings)
    SETTINGS[engine] = settings
    yield engine
    del SETTINGS[engine]
    engine.dispose()


def _import_small(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    settings = SETTINGS[engine]
    catalog_service.import_catalog(engine, settings, source=open_source(path, settings.limits))


def _rows(engine: Engine) -> tuple[int, ...]:
    with Session(engine) as s:
        tables = (CoverageSnapshot, CoverageDelta, CoverageCurrent)
        return tuple(s.execute(select(func.count()).select_from(t)).scalar_one() for t in tables)


def _catalogs(engine: Engine) -> list[str]:
    with Session(engine) as s:
        return [c.name for c in catalog_service.list_catalogs(s)]


def test_a_recorder_that_fails_undoes_the_write(
    recorded_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = recording.HistoryRecorder.after

    def after_then_fail(self: recording.HistoryRecorder, session: Session, cs: Any) -> None:
        real(self, session, cs)  # the snapshot is written (flushed), then the unit fails
        raise RuntimeError("recorder failed")

    monkeypatch.setattr(recording.HistoryRecorder, "after", after_then_fail)
    with pytest.raises(RuntimeError, match="recorder failed"):
        _import_small(recorded_engine, tmp_path)
    assert _catalogs(recorded_engine) == [] and _rows(recorded_engine) == (0, 0, 0)
    monkeypatch.setattr(recording.HistoryRecorder, "after", real)
    _import_small(recorded_engine, tmp_path)
    assert _catalogs(recorded_engine) == ["small"]
    assert _rows(recorded_engine)[:1] == (1,)


def test_a_write_that_fails_after_changed_leaves_no_snapshot(
    recorded_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _import_small(recorded_engine, tmp_path)
    before = _rows(recorded_engine)
    assert before[0] == 1

    def fail(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("write failed")

    monkeypatch.setattr(catalog_importing, "write_rules", fail)
    with pytest.raises(RuntimeError, match="write failed"):
        _import_small(recorded_engine, tmp_path)  # a replace: changed() ran, then the failure
    assert _rows(recorded_engine) == before and _catalogs(recorded_engine) == ["small"]
    with Session(recorded_engine) as s:
        scope = history_service.resolve_scope(s, catalog="small")
        assert len(history_service.coverage_history(s, scope=scope).points) == 1
        with pytest.raises(NotFound):
            history_service.resolve_scope(s, catalog="other")


# --- must-show 7: a release ingest ---------------------------------------------------------------


def revoked_between() -> tuple[str, str, str, str]:
    """(old, new, technique, revoked by): a technique active in `old` and revoked in `new`, from
    the raw bundles; 17.1 → 18.1 first, else 16.1 → 17.1."""
    for old, new in (("17.1", "18.1"), ("16.1", "17.1")):
        a, b = raw_techniques(old), raw_techniques(new)
        for t in sorted(a):
            if a[t].status == "active" and t in b and b[t].status == "revoked":
                return old, new, t, b[t].revoked_by or ""
    raise AssertionError("no technique revoked between the shared releases")


def test_a_release_ingest_names_the_revocation(tmp_path: Path) -> None:
    old, new, technique, by = revoked_between()
    assert raw_techniques(old)["T1059.001"].status == raw_techniques(new)["T1059.001"].status
    url = f"sqlite:///{tmp_path / 'ingest.sqlite'}"
    engine = make_engine(url)
    init_db(engine)
    ingest_sources(engine, [attack_file(f"enterprise-attack-{old}.json.gz")], limits=Limits())
    engine.dispose()
    body = SMALL.replace('"18.1"', f'"{old}"').replace("T1053.005", technique)
    for c in make_client(settings_for(url)):
        upload_text(c, "small.yaml", body)
        [imported] = history(c)
        assert imported["covered"] == covered_now(c) == 2
        ingest_sources(
            engine_of(c), [attack_file(f"enterprise-attack-{new}.json.gz")], limits=Limits()
        )
        points = history(c)
        assert [p["cause"]["cause"] for p in points] == ["catalog_import", "release_ingest"]
        assert points[-1]["release"] == f"enterprise {new}"
        assert points[-1]["covered"] == covered_now(c) == 1
        moved = changes(c, since=imported["cause"]["snapshot"])["items"]
        assert [(x["technique"], x["change"]) for x in moved] == [(technique, "lost")]
        assert moved[0]["reason"].startswith("technique revoked in a new release")
        assert (
            f"enterprise {new}" in moved[0]["reason"] and f"revoked by {by}" in moved[0]["reason"]
        )


# --- writers at once: the fold still ends at the coverage -----------------------------------------


def test_imports_at_once_fold_to_the_coverage(backend_client: TestClient, tmp_path: Path) -> None:
    """Three imports in parallel (each records against the scopes' current values): the history
    of every scope still ends where /coverage/techniques is."""
    c = backend_client
    files = [sigma_subset(tmp_path, 8, first) for first in (0, 3, 5)]
    barrier = threading.Barrier(len(files), timeout=60)
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            upload_catalog(c, files[i], name=f"part-{i}")
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(files))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    with Session(engine_of(c)) as s:
        for name in [None, *(f"part-{i}" for i in range(len(files)))]:
            scope = history_service.resolve_scope(s, catalog=name)
            folded = set(history_service.state_at(s, scope=scope, snapshot=None))
            params = {"catalog": name, "version": "18.1"} if name else {}
            assert folded == covered_set(c, **params), name
            last = history_service.coverage_history(s, scope=scope).points[-1]
            assert last.covered == len(folded)
    assert [p["cause"]["cause"] for p in history(c)] == ["catalog_import"] * len(files)


# --- a database that had coverage before its history ---------------------------------------------


def test_coverage_from_before_the_history_is_its_first_point(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A catalog imported with no recorder attached (a database older than the history): the
    first recorded change starts from a `found` point holding that coverage."""
    settings = settings_for(copy_of_loaded("sqlite", request, tmp_path))
    engine = make_engine(settings.database_url)  # no recorder: as before the history existed
    path = tmp_path / "old.yaml"
    path.write_text(SMALL.replace("name: small", "name: old"))
    catalog_service.import_catalog(engine, settings, source=open_source(path, settings.limits))
    engine.dispose()
    for c in make_client(settings):
        found = covered_set(c)
        assert found == {"T1059.001", "T1053.005"}
        upload_text(c, "cat.yaml", SMALL.replace("T1053.005", "T1003.001"))
        points = history(c)
        assert [(p["cause"]["cause"], p["covered"]) for p in points] == [
            ("found", len(found)),
            ("catalog_import", len(found | {"T1003.001"})),
        ]
        moved = changes(c, since=points[0]["cause"]["snapshot"])["items"]
        assert sorted((x["technique"], x["change"]) for x in moved) == [
            ("T1003.001", "gained"),
            ("T1059.001", "score_up"),  # two catalogs' rules now
        ]
        first = changes(c)["items"][: len(found)]
        assert {x["technique"] for x in first} == found
        assert {x["reason"] for x in first} == {"covered when the history began"}
