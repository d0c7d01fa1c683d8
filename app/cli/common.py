"""What every CLI module shares: settings, the engine, progress on a terminal, JSON output.

Nothing heavy at import time (no SQLAlchemy, no pydantic-settings): every command module imports
this one, and `kbmap ingest` wants its bundle reading under way before those load.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson
import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.core.config import Settings


def settings() -> Settings:
    from app.core.config import get_settings

    return get_settings()


_engines: list[Engine] = []


def engine(s: Settings | None = None) -> Engine:
    from app.core.db import init_db, make_engine

    eng = make_engine((s or settings()).database_url)
    init_db(eng)
    _engines.append(eng)
    return eng


def dispose_engines() -> None:
    """Close every engine the command opened (SQLite checkpoints its WAL on the last close)."""
    while _engines:
        _engines.pop().dispose()


@contextmanager
def progress() -> Iterator[Callable[[str], None] | None]:
    """A spinner with the current step on a terminal; nothing when output is not a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("starting") as status:
        yield lambda msg: status.update(msg)


def echo_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=_default).decode())


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    raise TypeError(type(value).__name__)
