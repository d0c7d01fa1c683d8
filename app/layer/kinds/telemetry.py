"""The telemetry layer: each technique in one of four states, rules × whether the collected data
components can see it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from app.core.errors import InvalidInput, Location
from app.layer.kinds.base import LayerKind, listed

if TYPE_CHECKING:
    from app.coverage.models import TechniqueCoverage
    from app.coverage.service import Scope
    from app.layer.entries import LayerContext
    from app.layer.navigator import Layer
    from app.layer.sources import Sources

TELEMETRY = {
    "covered": ("#018571", "covered by rules, telemetry collected"),
    "covered-blind": ("#80cdc1", "covered by rules, but no collected data component sees it"),
    "cheap": ("#fdb863", "not covered, telemetry collected: a rule is all that is missing"),
    "blind": ("#a50026", "not covered, no collected data component sees it"),
}


class Seen(NamedTuple):
    rows: Sequence[TechniqueCoverage]
    data_components: Mapping[str, Iterable[str]]  # technique → data components that see it


@dataclass(frozen=True)
class Telemetry(LayerKind[Seen]):
    """`collected` names data components of the release; an unknown one is an error."""

    name = "telemetry"
    help = "Telemetry layer: rules against --collected data components (4 colours)."
    noun = "telemetry"
    environment_hint = (
        "it judges rules against collected=; use the effective kind with environment="
    )

    collected: list[str] = field(default_factory=list)
    min_score: float = 0.0

    def gather(self, src: Sources, scope: Scope) -> Seen:
        if not self.collected:
            raise InvalidInput(
                "the telemetry layer needs collected= (data components you collect, e.g. "
                "Process Creation)",
                Location(field="collected"),
            )
        facts = src.facts(scope.release)
        known = {dc.lower() for dcs in facts.data_components.values() for dc in dcs}
        unknown = sorted(c for c in self.collected if c.lower() not in known)
        if unknown:
            raise InvalidInput(
                f"unknown data component(s) in collected: {', '.join(unknown)}",
                Location(field="collected"),
            )
        return Seen(src.technique_rows(scope), facts.data_components)

    def build(self, ctx: LayerContext, found: Seen) -> Layer:
        from app.layer import entries as e
        from app.layer.navigator import Technique

        have = {c.lower() for c in self.collected}
        out = []
        for r in found.rows:
            dcs = sorted(found.data_components.get(r.id, ()))
            seen = [d for d in dcs if d.lower() in have]
            for tactic, s in e.tactic_scores(r):
                covered = s > 0 and s >= self.min_score
                if covered:
                    state = "covered" if seen else "covered-blind"
                else:
                    state = "cheap" if seen else "blind"
                color, label = TELEMETRY[state]
                meta = [
                    ("coverage score", f"{s:g}"),
                    ("collected data components", listed(seen)),
                    ("data components", listed(dcs)),
                ]
                out.append(
                    Technique(
                        techniqueID=r.id,
                        tactic=tactic,
                        color=color,
                        comment=f"{r.name}: {label}",
                        metadata=e.metadata(meta),
                        links=e.technique_links(ctx, r.id),
                    )
                )
        return e.finish(
            ctx,
            out,
            name="telemetry",
            description=f"Rules ({e.catalogs_named(ctx)}) against collected telemetry "
            f"({', '.join(sorted(have))}) in {ctx.release}",
            legend=[(label, color) for color, label in TELEMETRY.values()],
        )
