"""A write that belongs to whatever unit of work this context commits.

The audit event of a use case is set by its entry point (the API's AuditWrites, the CLI's
@audited); `core.db.transaction()` runs it just before it commits, so the change and its record
commit together or not at all; the write itself sees to being made only once. Kept apart from
`core.db` so a CLI command can set it without importing SQLAlchemy first (0.3 s that a catalog
import would otherwise spend before its parse starts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

BEFORE_COMMIT: ContextVar[Callable[[Any], None] | None] = ContextVar(
    "kbmap_before_commit", default=None
)


@contextmanager
def before_commit(write: Callable[[Any], None] | None) -> Iterator[None]:
    """Within the block, `transaction()` runs `write(session)` before it commits (None: nothing)."""
    token = BEFORE_COMMIT.set(write)
    try:
        yield
    finally:
        BEFORE_COMMIT.reset(token)
