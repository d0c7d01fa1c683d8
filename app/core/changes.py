"""What a write changed, told to the recorders its engine carries, in the write's own transaction.

Every write that can move coverage (catalog import, replace, upgrade and delete; environment
import and delete; release ingest) calls `changed(session, Change(...))` before it modifies
anything: each recorder attached to the engine looks at the state before at once, and
`core.db.transaction()` runs its `after` just before it commits, after the audit event. So a
change and its record commit together or not at all. The coverage history (`app/history`) is the
recorder; the entry points attach it (`app/main.py`, `app/cli/common.py`), with their settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import Engine
from sqlmodel import Session

CAUSES = (
    "catalog_import",
    "catalog_replace",
    "catalog_upgrade",
    "catalog_delete",
    "environment_import",
    "environment_replace",
    "environment_delete",
    "release_ingest",
)
_PENDING = "kbmap_changes"


@dataclass(frozen=True)
class Change:
    """One write, as a recorder needs to know it: its cause (one of CAUSES), the ATT&CK domain it
    is in, what it touched, and for an upgrade the mappings it rewrote (old → new technique)."""

    cause: str
    domain: str
    catalog: str | None = None
    environment: str | None = None
    release: str | None = None  # "enterprise 18.1": an ingest's, or an upgrade's target
    remapped: tuple[tuple[str, str], ...] = ()


class Recorder(Protocol):
    def before(self, session: Session, change: Change) -> Any: ...

    def after(self, session: Session, changes: Sequence[tuple[Change, Any]]) -> None: ...


_RECORDERS: WeakKeyDictionary[Engine, Recorder] = WeakKeyDictionary()


def attach(engine: Engine, recorder: Recorder) -> None:
    """`recorder` records every change written through `engine` from now on (one per engine)."""
    _RECORDERS[engine] = recorder


def recorder_of(engine: Engine) -> Recorder | None:
    return _RECORDERS.get(engine)


def changed(session: Session, change: Change) -> None:
    """Tell the engine's recorder, before the write: it reads what it needs of the state before,
    and records when the unit of work commits."""
    bind = session.get_bind()
    recorder = _RECORDERS.get(bind) if isinstance(bind, Engine) else None
    if recorder is not None:
        pending = session.info.setdefault(_PENDING, [])
        pending.append((recorder, change, recorder.before(session, change)))


def record_pending(session: Session) -> None:
    """Run by `transaction()` before it commits: each recorder's record of this unit's changes."""
    pending: list[tuple[Recorder, Change, Any]] = session.info.pop(_PENDING, [])
    by_recorder: dict[int, tuple[Recorder, list[tuple[Change, Any]]]] = {}
    for recorder, change, before in pending:
        by_recorder.setdefault(id(recorder), (recorder, []))[1].append((change, before))
    for recorder, changes in by_recorder.values():
        recorder.after(session, changes)
