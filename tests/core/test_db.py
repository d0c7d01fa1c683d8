"""Schema: Alembic's head equals SCHEMA_HEAD, and migrating from empty equals create_all."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app.attack.tables import Relationship
from app.core.db import SCHEMA_HEAD, alembic_config, indexes_built_after, make_engine
from app.models import init_db

pytestmark = pytest.mark.integration  # builds databases


def test_schema_head_matches_alembic(tmp_path: Path) -> None:
    cfg = alembic_config(f"sqlite:///{tmp_path / 'x.sqlite'}")
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_HEAD


def test_migrations_build_the_same_schema_as_the_models(
    empty_engine: Engine, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.sqlite'}"
    if empty_engine.dialect.name == "postgresql":
        url = empty_engine.url.render_as_string(hide_password=False)
        SQLModel.metadata.drop_all(empty_engine)
        with empty_engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE alembic_version")
    command.upgrade(alembic_config(url), "head")
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    engine.dispose()


def test_init_db_is_idempotent_and_stamps_head(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'k.sqlite'}")
    init_db(engine)
    init_db(engine)
    with engine.connect() as conn:
        assert (
            conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == SCHEMA_HEAD
        )
        assert {"release", "attack_object", "catalog", "rule"} <= set(
            inspect(conn).get_table_names()
        )


def test_indexes_built_after_refuses_outside_a_transaction(tmp_path: Path) -> None:
    """pysqlite runs DDL in autocommit until a DML statement opens a transaction: dropping the
    indexes there would commit the drop whatever happens next."""
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    init_db(engine)
    table = Relationship.__table__  # type: ignore[attr-defined]
    before = {ix["name"] for ix in inspect(engine).get_indexes("relationship")}
    with (
        engine.connect() as conn,
        pytest.raises(RuntimeError, match="open transaction"),
        indexes_built_after(conn, [table]),
    ):
        pass
    assert {ix["name"] for ix in inspect(engine).get_indexes("relationship")} == before
    assert before == {ix.name for ix in table.indexes}
    engine.dispose()
