"""Ingest on both backends: whole releases or nothing, no-op re-ingest, --replace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from app.attack.ingest import ingest_sources
from app.attack.models import AttackObject, Relationship, Release, TechniqueTactic
from app.core.config import Limits
from app.core.errors import InvalidInput, NotFound
from tests import rawdata
from tests.conftest import attack_file


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
