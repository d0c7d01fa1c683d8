"""`@audited(action, *target_params)`: an audit event for every CLI command that changes state.

The CLI counterpart of the API's AuditWrites middleware: one decorator line on a command, and its
run is recorded as actor "cli:<os user>", with the command's plain arguments as detail and outcome
ok or error. Local access to the database is the trust boundary for the CLI, so this is a record,
not a check. The `ok` event commits in the command's own transaction (`before_commit`), so a change
whose event cannot be written fails with it. A failure to record any other event is one warning
line; it never hides the command's own outcome.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer

from app.core.commit_hook import before_commit
from app.core.errors import KbmapError

if TYPE_CHECKING:
    from app.auth.service import PendingEvent

P = ParamSpec("P")
R = TypeVar("R")


def _plain(value: Any) -> Any:
    """Arguments worth keeping: strings, numbers, flags, paths and lists of them."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return type(value).__name__


def _target(kwargs: dict[str, Any], params: tuple[str, ...]) -> str:
    for name in params:
        value = kwargs.get(name)
        if value:
            return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return ""


def record(action: str, target: str, outcome: str, detail: dict[str, Any]) -> None:
    """Write one event as the local user; warn on stderr (never raise) when it cannot be."""
    from app.auth import service as auth_service
    from app.cli.common import engine, settings

    try:
        try:
            eng = engine(settings())
        except KbmapError:
            if outcome == "error":  # no database, or none reachable: the command said so
                return
            raise
        try:
            auth_service.record_event(
                eng,
                actor=auth_service.local_actor(),
                action=action,
                target=target,
                outcome=outcome,
                detail=detail,
                retention_days=settings().audit_retention_days,
            )
        finally:
            eng.dispose()
    except Exception as exc:
        typer.echo(f"kbmap: warning: audit event not recorded ({type(exc).__name__})", err=True)


def _pending(action: str, target: str, detail: dict[str, Any]) -> PendingEvent:
    """The command's `ok` event, for the unit of work that commits its change."""
    from app.auth import service as auth_service
    from app.cli.common import settings

    return auth_service.PendingEvent(
        actor=auth_service.local_actor,
        action=lambda: action,
        target=lambda: target,
        detail=lambda: detail,
        retention_days=settings().audit_retention_days,
    )


class _LazyPending:
    """The command's `ok` event, built when its unit of work commits: app.auth (and SQLAlchemy
    with it) is imported then, not before the command starts (a catalog import's parse waits)."""

    def __init__(self, action: str, target: str, detail: dict[str, Any]) -> None:
        self._args = (action, target, detail)
        self._event: PendingEvent | None = None

    @property
    def written(self) -> bool:
        return self._event is not None and self._event.written

    def __call__(self, session: Any) -> None:
        if self._event is None:
            self._event = _pending(*self._args)
        self._event(session)


def audited(action: str, *target_params: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record each run of the command; the target is the first non-empty of `target_params`."""

    def wrap(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            detail: dict[str, Any] = {"arguments": {k: _plain(v) for k, v in kwargs.items()}}
            target = _target(kwargs, target_params)
            pending = _LazyPending(action, target, detail)
            try:
                with before_commit(pending):
                    result = func(*args, **kwargs)
            except typer.Exit as exc:
                if exc.exit_code or not pending.written:
                    record(action, target, "ok" if exc.exit_code == 0 else "error", detail)
                raise
            except KbmapError as exc:
                record(action, target, "error", {**detail, "error": str(exc)[:500]})
                raise
            except BaseException as exc:
                record(action, target, "error", {**detail, "error": type(exc).__name__})
                raise
            if not pending.written:  # the command committed nothing of its own
                record(action, target, "ok", detail)
            return result

        return run

    return wrap
