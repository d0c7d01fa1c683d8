"""The coverage history's facade: attach the recorder to an engine; read a scope's points over
time and the changes since a point."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core import changes
from app.history.changes import coverage_changes
from app.history.scopes import resolve_scope
from app.history.trend import before_last, coverage_history, state_at

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.core.config import Settings


def attach(engine: Engine, settings: Settings) -> None:
    """Record every change written through `engine` from now on (the entry points call this)."""
    from app.history.recording import HistoryRecorder  # the coverage stack, on a write's need

    changes.attach(engine, HistoryRecorder(settings))


__all__ = [
    "attach",
    "before_last",
    "coverage_changes",
    "coverage_history",
    "resolve_scope",
    "state_at",
]
