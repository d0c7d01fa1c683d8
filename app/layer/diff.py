"""Pure: what changed in a domain's techniques between two releases (added, changed, revoked).

Small on purpose: names, tactics, platforms, and descriptions whose `modified` stamp moved. The
full release diff (`app/refresh/diff.py`) can replace this module without touching the layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class TechniqueFacts:
    """One technique of one release, as much as the small release diff compares."""

    id: str
    name: str
    status: str  # active | revoked | deprecated
    tactics: tuple[str, ...]
    platforms: tuple[str, ...]
    revoked_by: str | None = None
    modified: str | None = None
    description: str = ""


@dataclass
class ReleaseDiff:
    added: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)  # id → "what: old → new"
    replaced: dict[str, list[str]] = field(default_factory=dict)  # replacement → revoked ids
    revoked: list[str] = field(default_factory=list)  # revoked with no active replacement
    deprecated: list[str] = field(default_factory=list)


def diff_releases(
    old: Mapping[str, TechniqueFacts], new: Mapping[str, TechniqueFacts]
) -> ReleaseDiff:
    """Added, changed, revoked and deprecated techniques between two releases of one domain.

    A description counts as changed only when `modified` moved too, so unchanged objects are not
    compared text by text. Small on purpose; the full diff service can replace it.
    """
    out = ReleaseDiff()
    for tid, n in sorted(new.items()):
        o = old.get(tid)
        was_active = o is not None and o.status == "active"
        if n.status == "active":
            if not was_active:
                out.added.append(tid)
                continue
            assert o is not None
            what = []
            if o.name != n.name:
                what.append(f"name: {o.name} → {n.name}")
            if o.tactics != n.tactics:
                what.append(f"tactics: {', '.join(o.tactics)} → {', '.join(n.tactics)}")
            if set(o.platforms) != set(n.platforms):
                what.append(f"platforms: {', '.join(o.platforms)} → {', '.join(n.platforms)}")
            if o.modified != n.modified and o.description != n.description:
                what.append("description")
            if what:
                out.changed[tid] = what
        elif was_active and n.status == "revoked":
            final = _final(new, tid)
            if final in new and new[final].status == "active":
                out.replaced.setdefault(final, []).append(tid)
            else:
                out.revoked.append(tid)
        elif was_active and n.status == "deprecated":
            out.deprecated.append(tid)
    return out


def _final(facts: Mapping[str, TechniqueFacts], tid: str) -> str:
    """The end of the revoked-by chain ('' when the technique names no replacement)."""
    seen = {tid}
    current = facts[tid].revoked_by or ""
    while current in facts and facts[current].revoked_by and current not in seen:
        seen.add(current)
        current = facts[current].revoked_by or ""
    return current


class _Scoped(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def tactics(self) -> tuple[str, ...]: ...
    @property
    def platforms(self) -> tuple[str, ...]: ...


def in_scope(
    facts: Mapping[str, _Scoped], *, platforms: Sequence[str], tactics: Sequence[str]
) -> set[str]:
    """Active technique ids matching the platform and tactic filters (case-insensitive)."""
    plats = {p.lower() for p in platforms}
    tacs = set(tactics)
    return {
        tid
        for tid, f in facts.items()
        if f.status == "active"
        and (not plats or plats & {p.lower() for p in f.platforms})
        and (not tacs or tacs & set(f.tactics))
    }
