"""Engine, sessions and the unit of work; everything dialect-specific lives here.

SQLite (default) gets WAL and foreign keys so readers never block on an ingest and cascades work;
PostgreSQL comes through KBMAP_DATABASE_URL. The schema is Alembic's: a fresh database is created
from metadata and stamped at head, an existing one is upgraded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(database_url: str) -> Engine:
    """Build the engine for a URL; SQLite files get their folder created and WAL turned on."""
    url = make_url(database_url)
    kwargs: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if url.get_backend_name() == "sqlite":
        db = url.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit once on success, roll back everything on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def bulk_insert(
    connection: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> int:
    """executemany of plain tuples: the hot path of ingest and import (no ORM objects)."""
    batch = rows if isinstance(rows, list) else list(rows)
    if not batch:
        return 0
    style = connection.dialect.paramstyle
    marks = (
        ", ".join(["?"] * len(columns)) if style == "qmark" else ", ".join(["%s"] * len(columns))
    )
    names = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table}" ({names}) VALUES ({marks})'
    connection.exec_driver_sql(sql, batch)
    return len(batch)


def alembic_config(database_url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def init_db(engine: Engine) -> None:
    """Create a fresh schema stamped at head, or upgrade an existing one to head."""
    from alembic import command

    import app.models  # noqa: F401  (registers every table on SQLModel.metadata)

    url = engine.url.render_as_string(hide_password=False)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        if "alembic_version" in inspect(conn).get_table_names():
            command.upgrade(cfg, "head")
        else:
            SQLModel.metadata.create_all(conn)
            command.stamp(cfg, "head")


def get_session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session
