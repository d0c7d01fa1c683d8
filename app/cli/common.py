"""What every CLI module shares: settings, the engine, progress on a terminal, JSON output."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import typer
from sqlalchemy import Engine

from app.core.config import Settings, get_settings


def settings() -> Settings:
    return get_settings()


def engine(s: Settings | None = None) -> Engine:
    from app.core.db import init_db, make_engine

    eng = make_engine((s or settings()).database_url)
    init_db(eng)
    return eng


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
