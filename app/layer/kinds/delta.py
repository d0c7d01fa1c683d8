"""The delta layer: a scope's coverage between two snapshots of its history (`from`, and `to` or
now): every technique covered at either end, gained, lost or unchanged, with the reason the
history recorded for its last change in between."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from app.core.errors import InvalidInput, Location
from app.layer.kinds.base import LayerKind, listed

if TYPE_CHECKING:
    from app.coverage.service import Scope
    from app.history.models import Cause, HistoryScope
    from app.layer.entries import LayerContext, TechniqueState
    from app.layer.navigator import Layer, MetadataItem
    from app.layer.sources import Sources

Value = tuple[float, str | None]  # (score, state), as the history keeps it
DELTA = {
    "gained": ("#018571", "gained: covered at `to`, not at `from`"),
    "lost": ("#a50026", "lost: covered at `from`, not at `to`"),
    "unchanged": ("#d9d9d9", "unchanged: covered at both ends"),
}


class Ends(NamedTuple):
    scope: HistoryScope
    start: Cause
    end: Cause | None  # None: now
    before: Mapping[str, Value]
    after: Mapping[str, Value]
    reasons: Mapping[str, str]  # technique → the reason of its last change in between
    techniques: Mapping[str, TechniqueState]  # the shown release's


@dataclass(frozen=True)
class Delta(LayerKind[Ends]):
    """`from` and `to` are snapshot ids of the scope's history (`/coverage/history`): one
    catalog's (catalog=), one environment's (environment=) or every catalog's in a domain."""

    name = "delta"
    help = (
        "Delta layer: techniques gained, lost or unchanged between two history snapshots, "
        "--from ID → --to ID (default: now)."
    )
    noun = "a delta between two snapshots of the coverage history"
    takes_environment = True  # an environment's history: covered there means rules exist

    from_version: str | None = None  # the request's `from`: here a snapshot id
    to_version: str | None = None

    def gather(self, src: Sources, scope: Scope) -> Ends:
        start = _snapshot(self.from_version, "from")
        if start is None:
            raise InvalidInput(
                "the delta layer needs from= (a snapshot id; see /coverage/history)",
                Location(field="from"),
            )
        end = _snapshot(self.to_version, "to")
        history = src.history_scope(scope)
        before = src.history_state(
            history, start, field="from"
        )  # NotFound listing the scope's snapshots
        after = src.history_state(history, end, field="to")
        points = {c.snapshot: (i, c) for i, c in enumerate(src.history_points(history))}
        last = points[end][0] if end is not None else len(points)
        if end is not None and points[start][0] > last:
            raise InvalidInput(
                f"from ({_point(points[start][1])}) comes after to ({_point(points[end][1])})",
                Location(field="from"),
            )
        reasons = {
            technique: why
            for snapshot, technique, why in src.history_reasons(history, after=start)
            if points[snapshot][0] <= last
        }
        techniques = src.facts(scope.release).index.techniques
        end_cause = points[end][1] if end is not None else None
        return Ends(history, points[start][1], end_cause, before, after, reasons, techniques)

    def build(self, ctx: LayerContext, found: Ends) -> Layer:
        from app.layer import entries as e
        from app.layer.chart import scope_words
        from app.layer.navigator import Technique

        scoped = e.in_scope(found.techniques, platforms=ctx.platforms, tactics=ctx.tactics)
        covered = found.before.keys() | found.after.keys()
        counts: Counter[str] = Counter()
        out = []
        for tid in sorted(covered & scoped):
            mark = _mark(tid, found)
            counts[mark] += 1
            out.append(
                Technique(
                    techniqueID=tid,
                    color=DELTA[mark][0],
                    comment=f"{found.techniques[tid].name}: {_comment(tid, mark, found)}",
                    metadata=_metadata(tid, found) or None,
                    links=e.technique_links(ctx, tid),
                )
            )
        gone = sorted(t for t in covered if t not in found.techniques)
        to = _point(found.end) if found.end else "now"
        words = scope_words(found.scope)
        return e.finish(
            dataclasses.replace(ctx, catalogs=[]),
            out,
            name=f"delta {found.start.snapshot} → {found.end.snapshot if found.end else 'now'}",
            description=(
                f"Coverage of {words} from {_point(found.start)} to {to}: "
                f"{counts['gained']} gained, {counts['lost']} lost, "
                f"{counts['unchanged']} unchanged"
            ),
            legend=[(label, color) for color, label in DELTA.values()],
            extra=[
                ("history", words),
                ("from", _point(found.start)),
                ("to", to),
                *((k, str(counts[k])) for k in DELTA),
                ("not in this release", listed(gone)),
            ],
            with_catalogs=False,
        )


def _snapshot(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit():
        raise InvalidInput(
            f"{field} must be a snapshot id (a number; see /coverage/history), not {value!r}",
            Location(field=field),
        )
    return int(value)


def _point(cause: Cause) -> str:
    """A snapshot as the layer names it: "snapshot 12 (2025-06-01 10:42, catalog import)"."""
    return f"snapshot {cause.snapshot} ({cause.at:%Y-%m-%d %H:%M}, {cause.cause.replace('_', ' ')})"


def _mark(tid: str, found: Ends) -> str:
    if tid not in found.before:
        return "gained"
    return "lost" if tid not in found.after else "unchanged"


def _comment(tid: str, mark: str, found: Ends) -> str:
    """The change in words: gained or lost with its reason; unchanged, with any move of score or
    state in between."""
    why = found.reasons.get(tid)
    if mark != "unchanged":
        return f"{mark} ({why})" if why else mark
    (was, then), (now, state) = found.before[tid], found.after[tid]
    moves = [f"score {was:g} → {now:g}"] if was != now else []
    moves += [f"{_state(then)} → {_state(state)}"] if then != state else []
    if not moves:
        return "unchanged"
    return f"covered at both ends; {', '.join(moves)}" + (f" ({why})" if why else "")


def _state(state: str | None) -> str:
    return (state or "covered").replace("_", " ")


def _metadata(tid: str, found: Ends) -> list[MetadataItem]:
    from app.layer.entries import metadata

    was, now = found.before.get(tid), found.after.get(tid)
    return metadata(
        [
            ("score at from", f"{was[0]:g}" if was else "not covered"),
            ("score at to", f"{now[0]:g}" if now else "not covered"),
            ("state at from", _state(was[1]) if was and was[1] else ""),
            ("state at to", _state(now[1]) if now and now[1] else ""),
            ("reason", found.reasons.get(tid, "")),
        ]
    )
