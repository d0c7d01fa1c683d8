"""Pure: why a technique's coverage in one scope changed, in words a reviewer reads.

A catalog change compares the catalog's rules before and after (`RuleFootprint`s): a rule added,
removed, enabled, disabled, deprecated, or remapped (by an upgrade: "remapped (T1574.002 revoked
by T1574.001)"). An ingest names the release that revoked or deprecated the technique; an
environment change names the telemetry. `Value` is (score, state); None is not covered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.catalog.service import RuleFootprint
    from app.core.changes import Change

Value = tuple[float, str | None]
SHOWN_RULES = 3  # rules named in a reason; the rest are counted


@dataclass(frozen=True)
class ReasonContext:
    """What the reasons of one change are read from."""

    change: Change
    before: Mapping[str, RuleFootprint] = field(default_factory=dict)
    after: Mapping[str, RuleFootprint] = field(default_factory=dict)
    status_of: Callable[[str], tuple[str, str | None]] = lambda _t: ("active", None)

    @cached_property
    def covering_before(self) -> dict[str, set[str]]:
        """Indexed once per change: a first import moves hundreds of techniques."""
        return _covering(self.before)

    @cached_property
    def covering_after(self) -> dict[str, set[str]]:
        return _covering(self.after)


def reason(ctx: ReasonContext, technique: str, old: Value | None, new: Value | None) -> str:
    """The why of one technique's change from `old` to `new` in a scope this change recomputed."""
    cause = ctx.change.cause
    if cause == "found":
        return "covered when the history began"
    if cause == "logbook":
        return "score logged in the DeTT&CT score logbook"
    if cause == "catalog_delete":
        return f"catalog deleted ({ctx.change.catalog})"
    if cause == "environment_delete":
        return f"environment deleted ({ctx.change.environment})"
    if cause.startswith("environment"):
        return _telemetry(old, new)
    if cause == "release_ingest":
        return _release(ctx, technique, old, new)
    return _rules(ctx, technique, old, new)


def _telemetry(old: Value | None, new: Value | None) -> str:
    was, now = _effective(old), _effective(new)
    if was and not now:
        return "telemetry removed from the environment"
    if now and not was:
        return "telemetry added to the environment"
    return "environment re-imported"


def _effective(value: Value | None) -> bool:
    return value is not None and value[1] == "effective"


def _release(ctx: ReasonContext, technique: str, old: Value | None, new: Value | None) -> str:
    release = ctx.change.release or f"ATT&CK {ctx.change.domain}"
    status, by = ctx.status_of(technique)
    if new is None and status == "revoked":
        return f"technique revoked in a new release ({release}, revoked by {by})"
    if new is None and status in ("deprecated", "missing"):
        return f"technique {status} in a new release ({release})"
    return f"new release ({release})"


def _rules(ctx: ReasonContext, technique: str, old: Value | None, new: Value | None) -> str:
    then = ctx.covering_before.get(technique, set())
    now = ctx.covering_after.get(technique, set())
    gained = not old or (new is not None and new[0] > old[0])
    words: dict[str, list[str]] = {}
    for rid in sorted((now - then) if gained else (then - now)):
        words.setdefault(_rule_word(ctx, rid, technique, gained), []).append(rid)
    if not words:  # the same rules with another weight (a severity or status changed)
        words = {"rule changed": sorted(then ^ now or now or then)}
    return "; ".join(_named(word, rids, ctx.change.catalog) for word, rids in words.items())


def _covering(rules: Mapping[str, RuleFootprint]) -> dict[str, set[str]]:
    """Technique → the rules that count for it (a deprecated rule weighs nothing by default)."""
    out: dict[str, set[str]] = {}
    for rid, fp in rules.items():
        if fp.enabled and not _deprecated(fp):
            for technique in fp.techniques:
                out.setdefault(technique, set()).add(rid)
    return out


def _deprecated(fp: RuleFootprint) -> bool:
    return (fp.status or "").lower() == "deprecated"


def _rule_word(ctx: ReasonContext, rid: str, technique: str, gained: bool) -> str:
    """What happened to one rule that started or stopped covering `technique`."""
    then, now = ctx.before.get(rid), ctx.after.get(rid)
    if gained:
        if then is None:
            return "rule added"
        if not then.enabled:
            return "rule enabled"
        if _deprecated(then) and technique in then.techniques:
            return "rule no longer deprecated"
        return _remap(ctx, technique, _original_of(now, technique), technique)
    if now is None:
        return "rule removed"
    if not now.enabled:
        return "rule disabled"
    if _deprecated(now) and technique in now.techniques:
        return "rule deprecated"
    return _remap(ctx, technique, technique, _rewritten_to(now, technique))


def _original_of(fp: RuleFootprint | None, technique: str) -> str | None:
    return next((o for t, o in fp.originals if t == technique), None) if fp else None


def _rewritten_to(fp: RuleFootprint, technique: str) -> str | None:
    return next((t for t, o in fp.originals if o == technique), None)


def _remap(ctx: ReasonContext, technique: str, old_id: str | None, new_id: str | None) -> str:
    """A mapping that moved: by an upgrade (with the ATT&CK reason), or by the catalog's author."""
    if ctx.change.cause != "catalog_upgrade" or not old_id or not new_id:
        return "rule remapped"
    status, by = ctx.status_of(old_id)
    if status == "revoked":
        return f"remapped ({old_id} revoked by {by or new_id})"
    return f"remapped ({old_id} {status}, now {new_id})"


def _named(word: str, rids: list[str], catalog: str | None) -> str:
    shown = ", ".join(rids[:SHOWN_RULES])
    more = f" and {len(rids) - SHOWN_RULES} more" if len(rids) > SHOWN_RULES else ""
    where = f"{catalog}: " if catalog else ""
    return f"{word} ({where}{shown}{more})"
