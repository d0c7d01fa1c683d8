"""What every CLI module shares: settings, the engine, progress on a terminal, JSON output.

Nothing heavy at import time (no SQLAlchemy, no pydantic-settings): every command module imports
this one, and `kbmap ingest` wants its bundle reading under way before those load.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson
import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.core.config import Settings
    from app.core.progress import Step


def settings() -> Settings:
    from app.core.config import get_settings

    return get_settings()


_engines: list[Engine] = []


def engine(s: Settings | None = None, *, create: bool = False) -> Engine:
    """The database, schema at head. Only commands that write pass `create`: a read in a folder
    with no database says so (NoDatabase) and leaves no file behind."""
    from app.core.db import open_database
    from app.history import service as history_service
    from app.models import METADATA

    s = s or settings()
    eng = open_database(s.database_url, create=create, metadata=METADATA)
    history_service.attach(eng, s)  # every change the command writes records its snapshot
    _engines.append(eng)
    return eng


def dispose_engines() -> None:
    """Close every engine the command opened (SQLite checkpoints its WAL on the last close)."""
    while _engines:
        _engines.pop().dispose()


@contextmanager
def progress() -> Iterator[Step | None]:
    """A progress bar with the current step on a terminal (stderr), cleared when the command
    ends; nothing when stderr is not a terminal. The bar pulses until a step says how far it is."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)
        last: list[Any] = ["", 0.0]  # the message drawn last, and when

        def step(message: str, done: int | None = None, total: int | None = None) -> None:
            # a new step is drawn at once (the 10 Hz refresh would skip short ones); progress
            # within a step at most every 50 ms (a download reports every 64 kB)
            now = time.monotonic()
            draw = message != last[0] or now - last[1] >= 0.05
            if draw:
                last[:] = [message, now]
            bar.update(task, description=message, completed=done, total=total, refresh=draw)

        yield step


def echo_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=_default).decode())


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    raise TypeError(type(value).__name__)
