"""Catalog upgrade: a catalog made against 16.1 rewritten to 18.1 keeps every rule and its
provenance, in one transaction; the coverage cache follows; API and CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from app.attack.ingest import ingest_sources
from app.auth.service import create_token
from app.catalog import service as catalog_service
from app.catalog import upgrade as catalog_upgrade
from app.catalog.models import MappingRead
from app.catalog.source import open_source
from app.catalog.upgrade import upgrade_catalog
from app.core.config import Limits, Settings
from app.core.db import make_engine
from app.core.errors import InvalidInput, NotFound
from app.coverage import service as coverage_service
from app.main import create_app
from tests.cli.test_attack import kbmap
from tests.conftest import attack_file
from tests.refresh.synthetic import LEGACY_CATALOG


@pytest.fixture(scope="module")
def base(loaded_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enterprise 16.1, 17.1, 18.1 (+ mobile, ICS) and the legacy catalog validated on 16.1."""
    path = tmp_path_factory.mktemp("upgrade") / "kbmap.sqlite"
    shutil.copy(loaded_sqlite_file, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    ingest_sources(engine, [attack_file("enterprise-attack-16.1.json.gz")], limits=Limits())
    legacy = path.parent / "legacy16.yaml"
    legacy.write_text(LEGACY_CATALOG)
    s = Settings(database_url=url, environment="test")
    result = catalog_service.import_catalog(engine, s, source=open_source(str(legacy), s.limits))
    assert result.catalog.attack_version == "16.1"
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture
def db(base: Path, settings: Settings, tmp_path: Path) -> Iterator[tuple[Engine, Settings]]:
    target = tmp_path / "upgrade.sqlite"
    shutil.copy(base, target)
    s = settings.model_copy(update={"database_url": f"sqlite:///{target}"})
    engine = make_engine(s.database_url)
    yield engine, s
    engine.dispose()


def mappings(engine: Engine) -> dict[str, list[MappingRead]]:
    with Session(engine) as session:
        page = catalog_service.list_rules(session, catalogs=["legacy16"], limit=1000)
    return {r.rule_id: r.mappings for r in page.items}


def test_16_to_18_keeps_every_rule_and_the_original_ids(db: tuple[Engine, Settings]) -> None:
    engine, s = db
    before = mappings(engine)
    report = upgrade_catalog(engine, s, name="legacy16", version="18.1")
    after = mappings(engine)
    assert sorted(after) == sorted(before) == ["R-1", "R-2", "R-3", "R-4", "R-5"]
    assert report.rules == 5 and report.catalog.rule_count == 5
    assert (report.from_version, report.to_version) == ("16.1", "18.1")
    assert report.catalog.attack_version == "18.1"
    assert [len(after[r]) for r in sorted(after)] == [len(before[r]) for r in sorted(before)]

    def view(rule: str) -> list[tuple[str, str | None, str, str | None]]:
        return [(m.written, m.technique, m.outcome, m.original) for m in after[rule]]

    assert view("R-1") == [("T1574.002", "T1574.001", "remapped", "T1574.002")]
    assert view("R-2") == [
        ("T1086", "T1059.001", "remapped", None),
        ("T1059.001", "T1059.001", "ok", None),
    ]
    assert view("R-3") == [("T1574.002@defense-evasion", "T1574.001", "remapped", "T1574.002")]
    assert after["R-3"][0].tactic == "defense-evasion" and after["R-3"][0].tactic_ok
    assert view("R-4") == [("T1999", "T1999", "unknown", None)]
    assert after["R-5"] == []
    assert after["R-1"][0].note == "upgraded 16.1 → 18.1; revoked: T1574.002 → T1574.001"
    assert report.rewritten == 2
    assert [(m.rule_id, m.before, m.after) for m in report.changed] == [
        ("R-1", "T1574.002", "T1574.001"),
        ("R-3", "T1574.002", "T1574.001"),
    ]
    assert [(m.rule_id, m.outcome, m.note) for m in report.not_placed] == [
        ("R-4", "unknown", "T1999 is not in ATT&CK enterprise 18.1")
    ]
    assert report.outcomes == {
        "ok": 1,
        "remapped": 3,
        "deprecated": 0,
        "unknown": 1,
        "wrong_domain": 0,
        "unparsable": 0,
    }
    stored = report.catalog.report
    assert stored.release == "enterprise 18.1"
    assert [(u.from_, u.to, u.rewritten) for u in stored.upgrades or []] == [
        ("enterprise 16.1", "enterprise 18.1", 2)
    ]


def test_a_second_upgrade_keeps_the_first_original(db: tuple[Engine, Settings]) -> None:
    engine, s = db
    first = upgrade_catalog(engine, s, name="legacy16", version="17.1")
    second = upgrade_catalog(engine, s, name="legacy16", version="18.1")
    assert (first.rewritten, second.rewritten) == (2, 0)
    m = mappings(engine)["R-1"][0]
    assert (m.technique, m.original) == ("T1574.001", "T1574.002")
    assert m.note == "revoked: T1574.002 → T1574.001"
    upgrades = second.catalog.report.upgrades or []
    assert [u.to for u in upgrades] == ["enterprise 17.1", "enterprise 18.1"]


def test_export_writes_the_upgraded_ids(db: tuple[Engine, Settings], tmp_path: Path) -> None:
    """Export keeps resolved ids, so the file speaks 18.1; `original` stays in the database."""
    engine, s = db
    upgrade_catalog(engine, s, name="legacy16", version="18.1")
    with Session(engine) as session:
        content, _media, _name = catalog_service.export_catalog(
            session, name="legacy16", fmt="yaml"
        )
    doc = yaml.safe_load(content)
    assert doc["attack"] == {"domain": "enterprise", "version": "18.1"}
    techniques = {r["id"]: r.get("techniques", []) for r in doc["rules"]}
    assert techniques == {
        "R-1": ["T1574.001"],
        "R-2": ["T1059.001"],
        "R-3": ["T1574.001@defense-evasion"],
        "R-4": ["T1999"],
        "R-5": [],
    }
    path = tmp_path / "again.yaml"
    path.write_bytes(content)
    again = catalog_service.import_catalog(
        engine, s, source=open_source(str(path), s.limits), name="again"
    )
    assert again.catalog.attack_version == "18.1"
    assert again.catalog.report.outcomes.ok == 3
    assert again.catalog.report.outcomes.unknown == 1


def test_upgrade_is_all_or_nothing(
    db: tuple[Engine, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, s = db

    def boom(*_args: object, **_kw: object) -> None:
        raise RuntimeError("late failure")

    monkeypatch.setattr(catalog_upgrade, "match_analytics", boom)
    with pytest.raises(RuntimeError, match="late failure"):
        upgrade_catalog(engine, s, name="legacy16", version="18.1")
    m = mappings(engine)["R-1"][0]
    assert (m.technique, m.outcome, m.original) == ("T1574.002", "ok", None)
    with Session(engine) as session:
        assert catalog_service.get_catalog(session, name="legacy16").attack_version == "16.1"


def test_coverage_follows_the_upgrade(db: tuple[Engine, Settings]) -> None:
    """Coverage caches mappings per catalog import; an upgrade must not be served stale."""
    engine, s = db

    def covered() -> int:
        from app.attack import service as attack_service

        with Session(engine) as session:
            release = attack_service.get_release(session, version="18.1")
            scope = coverage_service.make_scope(session, release=release, catalogs=["legacy16"])
            return coverage_service.summary(session, scope=scope, weights=s.coverage).all.covered

    assert covered() == 1  # T1059.001; T1574.002 is not a live 18.1 technique
    upgrade_catalog(engine, s, name="legacy16", version="18.1")
    assert covered() == 2  # + T1574.001


def test_refusals(db: tuple[Engine, Settings]) -> None:
    engine, s = db
    with pytest.raises(NotFound, match="no catalog named 'nope'"):
        upgrade_catalog(engine, s, name="nope", version="18.1")
    with pytest.raises(NotFound, match=r"enterprise 99\.0"):
        upgrade_catalog(engine, s, name="legacy16", version="99.0")
    with pytest.raises(InvalidInput, match="stays in its domain"):
        upgrade_catalog(engine, s, name="legacy16", domain="mobile", version="18.1")


def test_api_upgrade(db: tuple[Engine, Settings]) -> None:
    _engine, s = db
    with TestClient(create_app(s)) as c:
        url = "/api/v1/catalogs/legacy16/upgrade"
        assert c.post(url, params={"to": "18.1"}).status_code == 401
        _, token = create_token(c.app.state.engine, s, name="upgrader", scopes=["write"])
        c.headers["Authorization"] = f"Bearer {token}"
        r = c.post(url, params={"to": "18.1"})
        assert r.status_code == 200, r.text
        assert r.json()["rewritten"] == 2 and r.json()["catalog"]["attack_version"] == "18.1"
        rule = c.get("/api/v1/rules/legacy16/R-1").json()
        assert rule["mappings"][0]["original"] == "T1574.002"
        assert c.post(url, params={"to": "latest"}).status_code == 422
        assert c.post("/api/v1/catalogs/nope/upgrade", params={"to": "18.1"}).status_code == 404


def test_cli_upgrade(db: tuple[Engine, Settings]) -> None:
    _engine, s = db
    out = kbmap("catalog", "upgrade", "legacy16", "--to", "17.1", "--json", db=s.database_url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rewritten"] == 2
    shown = kbmap("catalog", "upgrade", "legacy16", "--to", "18.1", db=s.database_url, check=True)
    assert "legacy16: upgraded ATT&CK enterprise 17.1 → 18.1: 5 rules kept" in shown.stdout
    bad = kbmap("catalog", "upgrade", "legacy16", "--to", "99.0", db=s.database_url)
    assert bad.returncode == 1
    head, _, loaded = bad.stderr.strip().partition("; loaded: ")
    assert head == "kbmap: no ATT&CK release loaded for enterprise 99.0"
    assert {"enterprise 16.1", "enterprise 17.1", "enterprise 18.1"} <= set(loaded.split(", "))


def test_an_upgrade_moves_the_catalog_key_not_the_import_time(db: tuple[Engine, Settings]) -> None:
    """Caches of catalog-derived data are keyed by `catalog_key`: an upgrade bumps the revision
    (so the key moves) and leaves `imported_at`, which is when the catalog was imported."""
    engine, s = db
    with Session(engine) as session:
        before = catalog_service.get_catalog_row(session, name="legacy16")
    upgrade_catalog(engine, s, name="legacy16", version="18.1")
    with Session(engine) as session:
        after = catalog_service.get_catalog_row(session, name="legacy16")
    assert after.imported_at == before.imported_at
    assert after.revision == before.revision + 1
    assert catalog_service.catalog_key(after) != catalog_service.catalog_key(before)
