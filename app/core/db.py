"""Engine, sessions and the unit of work; everything dialect-specific lives here.

SQLite (default) gets WAL and foreign keys so readers never block on an ingest and cascades work;
PostgreSQL comes through KBMAP_DATABASE_URL. The schema is Alembic's: a fresh database is created
from metadata and stamped at head, an existing one is upgraded.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Table,
    create_engine,
    event,
    func,
    inspect,
    literal,
    text,
)
from sqlalchemy import select as sa_select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from app.core.changes import record_pending
from app.core.commit_hook import BEFORE_COMMIT
from app.core.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    KbmapError,
    Location,
    NoDatabase,
    StorageFull,
)

log = logging.getLogger("kbmap")
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
SCHEMA_HEAD = "0008"  # the newest Alembic revision; tests/core/test_db.py keeps them equal
SQLITE_BUSY_MS = 30_000  # how long a SQLite writer waits for another to finish
SQLITE_MMAP_BYTES = 1 << 30  # address space, not memory: the OS pages in what is read
# Connections kept per process, and how many more may open under load. The server runs up to 40
# requests at once in its thread pool; with SQLAlchemy's default 5 + 10, every request beyond
# the fifth opened and closed its own connection (a new PostgreSQL backend each: measured 520 vs
# 1,000+ technique pages/s). Two workers at 40 stay under PostgreSQL's default 100 connections.
POOL_SIZE, POOL_OVERFLOW = 20, 20


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


DATABASE_URL_SETTING = Location(field="KBMAP_DATABASE_URL")
HOW_TO_CREATE = "make one with `kbmap ingest <bundle>` or `kbmap serve`"


def parse_database_url(database_url: str) -> URL:
    """The URL, or InvalidInput naming the setting (never echoing it: it may hold a password)."""
    try:
        url = make_url(database_url)
        url.get_dialect()  # an unknown dialect or driver is refused here, not at first use
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise InvalidInput(
            "not a database URL (e.g. sqlite:///./data/kbmap.sqlite or "
            f"postgresql+psycopg://user@host/db): {str(exc).splitlines()[0]}",
            DATABASE_URL_SETTING,
        ) from None
    return url


def make_engine(database_url: str) -> Engine:
    """Build the engine for a URL (no connection yet); SQLite gets WAL turned on."""
    url = parse_database_url(database_url)
    kwargs: dict[str, Any] = {
        "json_serializer": _json_dumps,
        "json_deserializer": orjson.loads,
    }
    pooled = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW, "pool_use_lifo": True}
    if url.get_backend_name() == "sqlite":
        if _sqlite_path(url) is not None:  # an in-memory database lives in one connection
            kwargs.update(pooled)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pooled, pool_pre_ping=True)
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory ones."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database))


def where(engine: Engine) -> str:
    """The database named for a user: a SQLite file's path, else the URL without password."""
    path = _sqlite_path(engine.url)
    return str(path) if path else engine.url.render_as_string(hide_password=True)


def open_database(database_url: str, *, create: bool, metadata: MetaData) -> Engine:
    """The engine with its schema at head. `create` makes a missing database (write commands,
    the service); without it a missing one is NoDatabase and nothing is left behind, since a
    read that created an empty database would answer "nothing loaded" about the wrong place."""
    engine = make_engine(database_url)
    try:
        if create:
            _make_sqlite_folder(engine)
        elif not has_schema(engine):
            raise NoDatabase(f"no kbmap database at {where(engine)}; {HOW_TO_CREATE}")
        migrate(engine, metadata)
    except OperationalError as exc:
        engine.dispose()
        known = database_error(exc)
        if isinstance(known, StorageFull):
            raise known from None
        raise DatabaseUnavailable(
            f"cannot open the database {where(engine)}: {str(exc.orig).splitlines()[0]}",
            DATABASE_URL_SETTING,
        ) from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def _make_sqlite_folder(engine: Engine) -> None:
    """A SQLite file's own folder is made (./data by default), not the folders above it."""
    path = _sqlite_path(engine.url)
    if path is None or path.parent.is_dir():
        return
    if not path.parent.parent.is_dir():
        raise DatabaseUnavailable(
            f"cannot create the database {path}: folder {path.parent.parent} does not exist",
            DATABASE_URL_SETTING,
        )
    path.parent.mkdir(exist_ok=True)


def has_schema(engine: Engine) -> bool:
    """Whether the database exists and holds kbmap's tables; a missing SQLite file is not
    opened (connecting would create it)."""
    path = _sqlite_path(engine.url)
    if engine.dialect.name == "sqlite" and (path is None or not path.is_file()):
        return False
    with engine.connect() as conn:
        return "alembic_version" in inspect(conn).get_table_names()


def database_error(exc: BaseException) -> KbmapError | None:
    """What a failure of the database (or of the disk under it) means to a user, or None when
    `exc` is no such failure: the API answers it as JSON, the CLI as one line."""
    orig = getattr(exc, "orig", None) or exc
    text_ = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    if "disk is full" in text_ or (isinstance(orig, OSError) and orig.errno == errno.ENOSPC):
        return StorageFull(f"no space left on the disk ({text_}); nothing was written")
    if isinstance(exc, OperationalError | sqlite3.OperationalError):
        return DatabaseUnavailable(f"the database did not answer: {text_}")
    return None


class SchemaOnFirstUse:
    """`migrate` once the database answers. A service started while its database was down
    answers 503 until it is back, then makes or upgrades the schema on the first request."""

    def __init__(self, engine: Engine, metadata: MetaData, *, ready: bool) -> None:
        self.engine, self.metadata, self.ready = engine, metadata, ready
        self._lock = threading.Lock()

    def __call__(self) -> None:
        if self.ready:
            return
        with self._lock:
            if not self.ready:
                _make_sqlite_folder(self.engine)
                migrate(self.engine, self.metadata)
                self.ready = True


def schema_at_start(engine: Engine, metadata: MetaData) -> SchemaOnFirstUse:
    """The service's schema, made or upgraded now if the database answers; if not, one log
    line, and the service starts anyway (health 200, readiness and data requests 503)."""
    schema = SchemaOnFirstUse(engine, metadata, ready=False)
    try:
        schema()
    except (OperationalError, DatabaseUnavailable) as exc:
        known = database_error(exc) if isinstance(exc, OperationalError) else exc
        log.warning("kbmap: %s (%s); answering 503 until it answers", known, where(engine))
    return schema


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    # read pages through a memory map shared by every connection instead of a read() call per
    # page into each connection's own 2 MB cache (measured: rendering a technique page 2.7 → 1.8 ms)
    cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cur.close()


def contains_text(column: Any, wanted: str) -> ColumnElement[bool]:
    """`column` holds `text`, case-insensitively, as a literal: `%`, `_` and `\\` in the text are
    escaped, so `q=%` matches a percent sign, not every row (both dialects take ESCAPE)."""
    escaped = wanted.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def first_of_a_name(what: str, name: str) -> Iterator[None]:
    """Two first imports of one new name race to create it: the database's unique name lets one
    win, and the other (rolled back whole) is a Conflict rather than an IntegrityError. Wrap the
    import's `transaction()` in it."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(
            f"{what} {name!r} was created by another import at the same time; nothing was "
            "written by this one (import again to replace it)"
        ) from exc


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit once on success, roll back everything on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            write = BEFORE_COMMIT.get()
            if write is not None:
                write(session)
            record_pending(session)  # after the audit event, which a record names
            session.commit()
        except BaseException:
            session.rollback()
            raise


def one_writer_at_a_time(session: Session, what: str) -> None:
    """Until this transaction ends, no other transaction passes this call for `what`: on
    PostgreSQL a transaction-scoped advisory lock (READ COMMITTED then shows the statements after
    it what the other one committed); SQLite lets one writer in at a time already."""
    if not is_sqlite(session.get_bind()):
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:what))"), {"what": what})


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


@contextmanager
def indexes_built_after(connection: Connection, tables: Sequence[Table]) -> Iterator[None]:
    """Bulk-load tables that hold no rows yet with their indexes built once, at the end: a
    sorted build costs less than growing each B-tree row by row (measured on 20k relationships:
    0.32 s instead of 0.45 s). Tables with rows keep their indexes. Inside a transaction only,
    so a failed load rolls the drop back with the rows."""
    if is_sqlite(connection) and not _sqlite_in_transaction(connection):
        # pysqlite runs DDL outside a transaction when no DML has opened one: it would commit
        raise RuntimeError("indexes_built_after needs an open transaction")
    indexes = [index for table in tables if _is_empty(connection, table) for index in table.indexes]
    for index in indexes:
        index.drop(connection)
    yield
    for index in indexes:
        index.create(connection)


def rollback_journal_while_empty(connection: Connection, table: Table) -> bool:
    """Switch a SQLite file whose `table` is empty to a rollback journal for the load to come,
    so its pages are written once rather than twice (to the WAL, then into the file by the
    checkpoint): 0.11 s of 0.5 s for enterprise 18.1 (measured). True if switched; then call
    `wal_again` once the transaction has ended. Refused at once, and False, when any other
    connection has the file open (readers keep their WAL) or a transaction is open here."""
    if not is_sqlite(connection) or (connection.engine.url.database or ":memory:") == ":memory:":
        return False
    if _sqlite_in_transaction(connection) or not _is_empty(connection, table):
        return False
    connection.exec_driver_sql("PRAGMA busy_timeout=0")  # never wait for another connection
    try:
        mode = connection.exec_driver_sql("PRAGMA journal_mode=DELETE").scalar()
    except OperationalError:  # locked: someone else has the file open
        mode = "wal"
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    return mode == "delete"


def _sqlite_in_transaction(connection: Connection) -> bool:
    """Whether pysqlite has opened a transaction (it does so before the first DML statement)."""
    return bool(connection.connection.dbapi_connection.in_transaction)  # type: ignore[union-attr]


def _is_empty(connection: Connection, table: Table) -> bool:
    return connection.execute(sa_select(literal(1)).select_from(table).limit(1)).first() is None


def wal_again(engine: Engine) -> None:
    """Back to WAL after `rollback_journal_while_empty` (every new connection sets it too)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")


def alembic_config(database_url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine, metadata: MetaData) -> None:
    """Create a fresh schema (`metadata`: every table, from the registry in `app/models.py`)
    stamped at head, or upgrade an existing one to head.

    The common cases (fresh database, database already at head) skip importing Alembic: the
    head revision is `SCHEMA_HEAD`, which a test keeps equal to Alembic's own head.
    """
    with engine.begin() as conn:
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" not in tables:
            metadata.create_all(conn, checkfirst=bool(tables))
            conn.execute(
                text(
                    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
                )
            )
            conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": SCHEMA_HEAD})
            return
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if current == SCHEMA_HEAD:
            return
        from alembic import command

        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@contextmanager
def autocommit_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for one read statement, with no transaction around it: one statement sees
    one snapshot by itself. PostgreSQL is spared BEGIN, SET TRANSACTION and ROLLBACK (three of
    a cached page's five round trips); SQLite's driver begins no transaction for a SELECT."""
    with engine.connect() as conn:
        yield conn if is_sqlite(conn) else conn.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for one read use case, on one snapshot; closed with a rollback."""
    with Session(engine) as session:
        begin_snapshot(session)
        yield session


def begin_snapshot(session: Session) -> None:
    """Make every later read of `session` see one snapshot of the database.

    A request reads in several queries (the release, then its objects); without this each query
    sees the newest commit, so a page built while an ingest commits mixes two releases. PostgreSQL
    gets REPEATABLE READ for this transaction; SQLite an explicit BEGIN, since the driver starts
    no transaction for SELECTs (in WAL mode the snapshot is taken at the first read). For read
    sessions only: the session is closed with a rollback, never committed.
    """
    conn = session.connection()
    if is_sqlite(conn):
        conn.exec_driver_sql("BEGIN")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
