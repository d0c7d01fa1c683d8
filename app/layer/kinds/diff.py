"""The diff layer: what changed in ATT&CK between two loaded releases of a domain, as entries on
the newer one (added, reinstated, changed, replacing a technique revoked in it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from app.core.errors import InvalidInput, Location
from app.layer.kinds.base import LayerKind, listed

if TYPE_CHECKING:
    from app.attack.models import ReleaseChanges, TechniqueChanges
    from app.coverage.service import Scope
    from app.layer.entries import LayerContext, TechniqueState
    from app.layer.navigator import Layer
    from app.layer.sources import Sources

DIFF = {
    "added": ("#018571", "new in this release"),
    "reinstated": ("#80cdc1", "active again: deprecated or revoked in the older release"),
    "replaces": ("#7b3294", "replaces a technique revoked in this release"),
    "changed": ("#fdb863", "changed: name, tactics, platforms or description"),
}


class Changes(NamedTuple):
    changes: ReleaseChanges  # the attack service's release diff
    old: Mapping[str, TechniqueState]  # the techniques it compared: names, tactics, platforms
    new: Mapping[str, TechniqueState]


@dataclass(frozen=True)
class Diff(LayerKind[Changes]):
    """The layer shows the newer release (`to`, else the scope's); `from` defaults to the
    newest loaded release older than it."""

    name = "diff"
    help = (
        "Diff layer: techniques added, reinstated, changed or replacing revoked ones, "
        "--from → --to."
    )
    noun = "a diff"
    environment_hint = "a diff compares ATT&CK releases, no coverage is judged"

    from_version: str | None = None
    to_version: str | None = None

    def shown_version(self, scope: Scope) -> str:
        return self.to_version or scope.release.version

    def gather(self, src: Sources, scope: Scope) -> Changes:
        """`scope.release` is already the newer release (see `shown_version`)."""
        to = scope.release
        old = src.release(to.domain, self.from_version or self._older(src, scope))
        if old.version_key >= to.version_key:
            raise InvalidInput(
                f"from ({old.version}) must be older than to ({to.version})", Location(field="from")
            )
        return Changes(src.release_changes(old, to), src.techniques(old), src.techniques(to))

    def _older(self, src: Sources, scope: Scope) -> str:
        to = scope.release
        older = [v for v in src.versions(to.domain) if _vkey(v) < _vkey(to.version)]
        if not older:
            raise InvalidInput(
                f"no ATT&CK {to.domain} release older than {to.version} is loaded; "
                "name one with from=",
                Location(field="from"),
            )
        return older[-1]

    def build(self, ctx: LayerContext, found: Changes) -> Layer:
        from app.layer import entries as e
        from app.layer.navigator import MetadataItem, Technique

        t, since = found.changes.techniques, found.changes.from_version
        added = [r.id for r in t.added if r.id]
        reinstated = [r.id for r in t.reinstated if r.id]
        replaced: dict[str, list[str]] = {}
        for r in t.revoked:
            if r.replacement and r.id:
                replaced.setdefault(r.replacement, []).append(r.id)
        changed = _changes(t, found.old, found.new)
        scoped = e.in_scope(found.new, platforms=ctx.platforms, tactics=ctx.tactics)
        out = []
        for tid in sorted((set(added) | set(reinstated) | set(changed) | set(replaced)) & scoped):
            marks = [
                k
                for k, s in (("added", added), ("reinstated", reinstated), ("replaces", replaced))
                if tid in s
            ]
            marks += ["changed"] if tid in changed else []
            meta = [MetadataItem(name="change", value=c) for c in changed.get(tid, ())]
            meta += [MetadataItem(name="replaces", value=r) for r in replaced.get(tid, ())]
            notes = "; ".join(_notes(tid, since, marks, replaced)) or "changed"
            out.append(
                Technique(
                    techniqueID=tid,
                    color=DIFF[marks[0]][0],
                    comment=f"{found.new[tid].name}: {notes}",
                    metadata=meta or None,
                    links=e.technique_links(ctx, tid),
                )
            )
        ctx = dataclasses.replace(ctx, catalogs=[])
        return e.finish(
            ctx,
            out,
            name=f"diff {since} → {ctx.version}",
            description=f"What changed in ATT&CK {ctx.domain} from {since} to {ctx.version}",
            legend=[(label, color) for color, label in DIFF.values()],
            extra=[
                ("from", f"ATT&CK {ctx.domain} {since}"),
                ("added", str(len(added))),
                ("reinstated", listed(reinstated)),
                ("changed", str(len(changed))),
                ("revoked", listed([r.id for r in t.revoked if r.id])),
                ("deprecated", listed([r.id for r in t.deprecated if r.id])),
            ],
            with_catalogs=False,
        )


def _notes(tid: str, since: str, marks: list[str], replaced: Mapping[str, list[str]]) -> list[str]:
    """The comment's words for how a technique changed (`changed` alone has none)."""
    out = []
    if "added" in marks:
        out.append(f"new since {since}")
    if "reinstated" in marks:
        out.append(f"active again (not active in {since})")
    if "replaces" in marks:
        out.append(f"replaces {', '.join(replaced[tid])} (revoked)")
    return out


def _changes(
    t: TechniqueChanges, old: Mapping[str, TechniqueState], new: Mapping[str, TechniqueState]
) -> dict[str, list[str]]:
    """Technique id → "what: before → after" lines, in the legend's order: name, tactics,
    platforms, description (the diff reports these for techniques active in both releases)."""
    out: dict[str, list[str]] = {}
    for r in t.renamed:
        out.setdefault(r.id, []).append(f"name: {r.old_name} → {r.new_name}")
    for c in t.tactics_changed:
        tid = c.id or ""
        was, now = ", ".join(old[tid].tactics), ", ".join(new[tid].tactics)
        out.setdefault(tid, []).append(f"tactics: {was} → {now}")
    for c in t.platforms_changed:
        tid = c.id or ""
        was, now = ", ".join(old[tid].platforms), ", ".join(new[tid].platforms)
        out.setdefault(tid, []).append(f"platforms: {was} → {now}")
    for d in t.description_changed:
        out.setdefault(d.id or "", []).append("description")
    return {tid: out[tid] for tid in sorted(out)}


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())
