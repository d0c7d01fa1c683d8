"""Step: how a long use case reports where it is, without knowing who shows it (the CLI draws a
bar on a terminal; the API and scripts pass nothing)."""

from __future__ import annotations

from typing import Protocol


class Step(Protocol):
    def __call__(self, message: str, done: int | None = None, total: int | None = None) -> None:
        """`message` names the current step; `done` of `total` (bundles, bytes), when known,
        moves the bar."""
