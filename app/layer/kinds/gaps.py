"""The gaps layer: every uncovered or weak technique, scored by its gap priority."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.layer.kinds.base import LayerKind, listed
from app.layer.kinds.effective import STATES

if TYPE_CHECKING:
    from app.coverage.models import Gap
    from app.coverage.service import Scope
    from app.layer.entries import LayerContext
    from app.layer.navigator import Layer
    from app.layer.sources import Sources

GAP_GRADIENT = ["#fee391", "#fe9929", "#cc4c02"]  # low → high priority, light → dark: no hue needed


@dataclass(frozen=True)
class Gaps(LayerKind[Sequence["Gap"]]):
    """The gaps `/coverage/gaps` lists, each an entry scored by its priority."""

    name = "gaps"
    help = "Gaps layer: every uncovered or weak technique, scored by gap priority."
    noun = "gaps"
    takes_environment = True  # coverage's gaps: the techniques not effective there

    collected: list[str] = field(default_factory=list)
    min_score: float = 0.0  # covered below it is weak

    def gather(self, src: Sources, scope: Scope) -> Sequence[Gap]:
        return src.gaps(scope, collected=self.collected, min_score=self.min_score)

    def build(self, ctx: LayerContext, found: Sequence[Gap]) -> Layer:
        from app.layer import entries as e
        from app.layer.navigator import Gradient, Technique

        top = max((g.priority for g in found), default=0.0)
        out = [
            Technique(
                techniqueID=g.id,
                score=g.priority,
                comment=self._comment(g),
                metadata=e.metadata(_why(g)),
                links=e.technique_links(ctx, g.id),
            )
            for g in found
        ]
        what = "Techniques not effective" if ctx.environment else "Uncovered and weak techniques"
        return e.finish(
            ctx,
            out,
            name="gaps",
            description=f"{what} of {ctx.release} against {e.catalogs_named(ctx)}"
            f"{ctx.in_environment}; score = gap priority (threat use, platform span, "
            "telemetry, weakness)",
            gradient=Gradient(colors=GAP_GRADIENT, minValue=0, maxValue=max(1, math.ceil(top))),
            legend=[("low priority gap", GAP_GRADIENT[0]), ("high priority gap", GAP_GRADIENT[-1])],
            sorting=3,
        )

    def _comment(self, g: Gap) -> str:
        p = g.parts
        if g.state is not None:  # the environment's answer
            state = STATES[g.state][1]
        elif g.score <= 0:
            state = "uncovered"
        else:
            state = f"weak (score {g.score:g} < {self.min_score:g})"
        return (
            f"{g.name}: {state}, priority {g.priority:g} "
            f"(used by {p.threat_uses}, {p.platform_span} platform(s), telemetry {p.telemetry})"
        )


def _why(g: Gap) -> list[tuple[str, str]]:
    """The priority's parts and what the technique is used by and seen with, as metadata."""
    p = g.parts
    return [
        ("priority", f"{g.priority:g}"),
        ("state", g.state or ""),
        ("missing log sources", listed(g.missing_log_sources or [])),
        ("coverage score", f"{g.score:g}"),
        ("threat uses", f"{p.threat_uses} (+{p.threat:g})"),
        ("platform span", f"{p.platform_span} (+{p.platforms:g})"),
        ("telemetry", f"{p.telemetry} (+{p.telemetry_bonus:g})"),
        ("weakness", f"×{p.weakness:g}"),
        ("groups", listed(g.groups)),
        ("software", listed(g.software)),
        ("campaigns", listed(g.campaigns)),
        ("collected data components", listed(g.collected_data_components)),
        ("data components", listed(g.data_components)),
        ("detection strategies", listed(g.detection_strategies)),
    ]
