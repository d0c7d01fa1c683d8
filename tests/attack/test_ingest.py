"""Ingest on both backends: whole releases or nothing, no-op re-ingest, --replace."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, inspect, select
from sqlmodel import Session

from app.attack.ingest import ingest_sources
from app.attack.stix import ParsedRelease
from app.attack.tables import (
    AttackObject,
    Citation,
    Relationship,
    Release,
    TechniqueDataComponent,
    TechniqueTactic,
)
from app.core.config import Limits
from app.core.db import make_engine
from app.core.errors import InvalidInput, NotFound
from app.models import init_db
from tests import rawdata
from tests.conftest import attack_file

pytestmark = pytest.mark.integration  # builds databases from the real releases


def _counts(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as s:
        return (
            s.execute(select(func.count()).select_from(Release)).scalar_one(),
            s.execute(select(func.count()).select_from(AttackObject)).scalar_one(),
            s.execute(select(func.count()).select_from(Relationship)).scalar_one(),
        )


def test_ingest_then_noop_then_replace(empty_engine: Engine) -> None:
    name = "ics-attack-18.1.json.gz"
    first = ingest_sources(empty_engine, [attack_file(name)], limits=Limits())
    assert [(o.domain, o.version, o.status, o.techniques) for o in first] == [
        ("ics", "18.1", "loaded", len(rawdata.active_techniques(name)))
    ]
    raw = rawdata.objects(name)
    expected = (
        1,
        sum(o["type"] != "relationship" for o in raw),
        sum(o["type"] == "relationship" for o in raw),
    )
    assert _counts(empty_engine) == expected
    again = ingest_sources(empty_engine, [attack_file(name)], limits=Limits())
    assert again[0].status == "unchanged"
    assert _counts(empty_engine) == expected
    replaced = ingest_sources(empty_engine, [attack_file(name)], limits=Limits(), replace=True)
    assert replaced[0].status == "replaced"
    assert _counts(empty_engine) == expected
    with Session(empty_engine) as s:
        tactics = s.execute(select(func.count()).select_from(TechniqueTactic)).scalar_one()
    assert tactics == sum(
        len(o.get("kill_chain_phases", [])) for o in raw if o["type"] == "attack-pattern"
    )


def test_bad_file_in_a_batch_changes_nothing(empty_engine: Engine, tmp_path: Path) -> None:
    bad = tmp_path / "ics-attack-9.9.json"
    bad.write_text(json.dumps({"type": "bundle", "objects": [{"type": "attack-pattern"}]}))
    with pytest.raises(InvalidInput, match="has no id or type") as info:
        ingest_sources(
            empty_engine, [attack_file("ics-attack-17.1.json.gz"), str(bad)], limits=Limits()
        )
    assert str(bad) in str(info.value)
    assert _counts(empty_engine) == (0, 0, 0)


def test_same_release_twice_in_one_call_is_refused(empty_engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="named twice"):
        ingest_sources(
            empty_engine,
            [attack_file("ics-attack-18.1.json.gz"), attack_file("stix21/ics-attack-18.1.json.gz")],
            limits=Limits(),
        )
    assert _counts(empty_engine) == (0, 0, 0)


def test_missing_path_is_not_found(empty_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        ingest_sources(empty_engine, [str(tmp_path / "nope.json")], limits=Limits())


def test_folder_loads_every_release_side_by_side(empty_engine: Engine, tmp_path: Path) -> None:
    for name in (
        "ics-attack-17.1.json.gz",
        "ics-attack-18.1.json.gz",
        "mobile-attack-18.1.json.gz",
    ):
        (tmp_path / name).write_bytes(Path(attack_file(name)).read_bytes())
    (tmp_path / "notes.txt").write_text("ignored: not a bundle name")
    out = ingest_sources(empty_engine, [str(tmp_path)], limits=Limits())
    assert sorted((o.domain, o.version) for o in out) == [
        ("ics", "17.1"),
        ("ics", "18.1"),
        ("mobile", "18.1"),
    ]


def _release_indexes(engine: Engine) -> dict[str, set[str]]:
    names = (
        "attack_object",
        "relationship",
        "technique_tactic",
        "technique_data_component",
        "attack_citation",
    )
    found = inspect(engine)
    return {  # PostgreSQL lists the index behind a unique constraint too
        t: {str(ix["name"]) for ix in found.get_indexes(t) if "duplicates_constraint" not in ix}
        for t in names
    }


def test_indexes_are_built_after_the_first_load_only_and_survive_a_failed_one(
    empty_engine: Engine, tmp_path: Path
) -> None:
    """An empty database loads without its release indexes and builds them at the end; a later
    release keeps them; a failed first load rolls the drop back with the rows."""
    expected = {  # from the models, not from the code under test
        m.__tablename__: {str(ix.name) for ix in m.__table__.indexes}  # type: ignore[attr-defined]
        for m in (AttackObject, Relationship, TechniqueTactic, TechniqueDataComponent, Citation)
    }
    assert all(expected.values())
    ddl: list[str] = []

    def collect(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith(("DROP INDEX", "CREATE INDEX")):
            ddl.append(statement.split()[0].upper())

    event.listen(empty_engine, "before_cursor_execute", collect)
    bad = tmp_path / "ics-attack-9.9.json"
    bad.write_text(json.dumps({"type": "bundle", "objects": [{"type": "attack-pattern"}]}))
    with pytest.raises(InvalidInput):
        ingest_sources(
            empty_engine, [attack_file("ics-attack-17.1.json.gz"), str(bad)], limits=Limits()
        )
    dropped = sum(map(len, expected.values()))
    assert ddl.count("DROP") == dropped  # the first release was written before the bad file
    assert _release_indexes(empty_engine) == expected
    assert _counts(empty_engine) == (0, 0, 0)

    ddl.clear()
    ingest_sources(empty_engine, [attack_file("ics-attack-17.1.json.gz")], limits=Limits())
    assert ddl == ["DROP"] * dropped + ["CREATE"] * dropped
    ddl.clear()
    ingest_sources(empty_engine, [attack_file("ics-attack-18.1.json.gz")], limits=Limits())
    assert ddl == []  # tables with rows keep their indexes
    assert _release_indexes(empty_engine) == expected
    event.remove(empty_engine, "before_cursor_execute", collect)


def test_keep_receives_what_was_parsed(empty_engine: Engine) -> None:
    name = "ics-attack-18.1.json.gz"
    kept: list[object] = []
    ingest_sources(empty_engine, [attack_file(name)], limits=Limits(), keep=kept)
    doc, parsed = kept
    assert isinstance(doc, dict)
    assert len(doc["objects"]) == len(rawdata.objects(name))
    assert isinstance(parsed, ParsedRelease)
    assert (parsed.domain, parsed.version) == ("ics", "18.1")


def _journal_modes(seen: list[str]) -> Any:
    """Record every journal_mode the ingest asks SQLite for (the pragmas, not their effect)."""

    def collect(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "journal_mode=" in statement:
            seen.append(statement.split("=")[1].strip())

    return collect


def test_a_first_load_into_a_new_sqlite_file_uses_a_rollback_journal_then_wal_again(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    engine = make_engine(url)
    init_db(engine)
    asked: list[str] = []
    event.listen(engine, "before_cursor_execute", _journal_modes(asked))
    ingest_sources(engine, [attack_file("ics-attack-18.1.json.gz")], limits=Limits())
    assert asked == ["DELETE", "WAL"]  # switched for the load, back at the end
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    asked.clear()
    ingest_sources(engine, [attack_file("ics-attack-17.1.json.gz")], limits=Limits())
    assert asked == []  # a database with a release keeps its WAL
    engine.dispose()
    raw = rawdata.objects("ics-attack-18.1.json.gz")
    other = make_engine(url)
    with Session(other) as s:
        n = s.execute(
            select(func.count())
            .select_from(Relationship)
            .join(Release)
            .where(Release.version == "18.1")
        ).scalar_one()
    assert n == sum(o["type"] == "relationship" for o in raw)
    other.dispose()


def test_the_journal_stays_wal_while_another_connection_has_the_file_open(
    tmp_path: Path,
) -> None:
    """A reader (a server on the same file) keeps its WAL: the switch is refused at once rather
    than after the 30 s busy timeout, and the load runs as usual."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    engine = make_engine(url)
    init_db(engine)
    reader = sqlite3.connect(str(tmp_path / "shared.sqlite"))
    reader.execute("SELECT count(*) FROM release").fetchone()  # open, WAL index mapped
    asked: list[str] = []
    event.listen(engine, "before_cursor_execute", _journal_modes(asked))
    started = time.monotonic()
    ingest_sources(engine, [attack_file("ics-attack-18.1.json.gz")], limits=Limits())
    assert time.monotonic() - started < 20
    assert asked == ["DELETE"]  # tried, refused ("database is locked"), so nothing to undo
    assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert reader.execute("SELECT count(*) FROM release").fetchone() == (1,)
    reader.close()
    engine.dispose()


def test_a_failed_first_load_leaves_an_empty_wal_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'failed.sqlite'}"
    engine = make_engine(url)
    init_db(engine)
    bad = tmp_path / "ics-attack-9.9.json"
    bad.write_text(json.dumps({"type": "bundle", "objects": [{"type": "attack-pattern"}]}))
    with pytest.raises(InvalidInput):
        ingest_sources(engine, [attack_file("ics-attack-18.1.json.gz"), str(bad)], limits=Limits())
    assert _counts(engine) == (0, 0, 0)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_a_version_that_contradicts_the_file_name_is_refused(empty_engine: Engine) -> None:
    """The STIX 2.0 bundles carry no collection object: their file name is what says 18.1."""
    with pytest.raises(InvalidInput, match=r"--version 17\.1 contradicts the file name \(18\.1\)"):
        ingest_sources(
            empty_engine, [attack_file("ics-attack-18.1.json.gz")], limits=Limits(), version="17.1"
        )
    assert _counts(empty_engine) == (0, 0, 0)
    same = ingest_sources(
        empty_engine, [attack_file("ics-attack-18.1.json.gz")], limits=Limits(), version="18.1"
    )
    assert [(o.version, o.status) for o in same] == [("18.1", "loaded")]
