"""The effective layer: each technique coloured by its state in an environment (`environment=`):
whether a rule can fire on the telemetry its systems collect, and if not, what is missing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.errors import InvalidInput, Location
from app.layer.kinds.base import LayerKind, listed

if TYPE_CHECKING:
    from app.coverage.models import TechniqueCoverage
    from app.coverage.service import Scope
    from app.environment.service import EnvironmentTelemetry
    from app.layer.entries import LayerContext
    from app.layer.navigator import Layer
    from app.layer.sources import Sources

# state → (colour, label), in coverage's STATES order (a test holds them equal): the legend's order.
# The colours stay apart (CIEDE2000 ≥ 20) for people with deuteranopia, protanopia or tritanopia:
# teal, purple, light orange, dark red, grey differ in lightness as well as hue (docs/web.md).
STATES = {
    "effective": ("#018571", "effective: a rule fires on collected telemetry"),
    "rule_without_telemetry": (
        "#7b3294",
        "rule without telemetry: rules exist, no system collects what they need",
    ),
    "telemetry_only": (
        "#fdb863",
        "telemetry only: the data is collected, a rule is all that is missing",
    ),
    "blind": ("#a50026", "blind: no rule, and no collected data component sees it"),
    "unknown": ("#d9d9d9", "unknown: rules whose log sources kbmap cannot place"),
}


def need_environment(scope: Scope, kind: str) -> EnvironmentTelemetry:
    """The scope's environment; a kind judged by an environment cannot guess one."""
    if scope.environment is None:
        raise InvalidInput(
            f"the {kind} layer needs environment= (an environment's name, see /environments)",
            Location(field="environment"),
        )
    return scope.environment.telemetry


@dataclass(frozen=True)
class Effective(LayerKind[Sequence["TechniqueCoverage"]]):
    """The rows `/coverage/techniques?environment=` serves, one entry per technique and tactic."""

    name = "effective"
    help = "Effective layer: each technique's state in --env (five colours)."
    noun = "effective coverage"
    takes_environment = True

    def gather(self, src: Sources, scope: Scope) -> Sequence[TechniqueCoverage]:
        need_environment(scope, self.name)
        return src.technique_rows(scope)

    def build(self, ctx: LayerContext, found: Sequence[TechniqueCoverage]) -> Layer:
        from app.layer import entries as e
        from app.layer.navigator import Technique

        out = []
        for r in found:  # one entry per tactic: the state is the technique's
            color, label = STATES[r.state or "unknown"]
            meta = e.metadata(_metadata(r))
            links = e.technique_links(ctx, r.id)
            out += [
                Technique(
                    techniqueID=r.id,
                    tactic=tactic,
                    score=r.effective_score or 0.0,  # 0 unless effective: an import skips it
                    color=color,
                    comment=label,
                    metadata=meta,
                    links=links,
                )
                for tactic in _tactics(r)
            ]
        return e.finish(
            ctx,
            out,
            name=f"effective {ctx.environment}",
            description=f"Effective coverage of {ctx.release} by {e.catalogs_named(ctx)}"
            f"{ctx.in_environment}: a technique is effective when one of its rules targets a "
            "platform a system runs and reads a data component that system collects; "
            "colour = state, score = effective score (rules that can fire, × data quality)",
            legend=[(label, color) for color, label in STATES.values()],
        )


def _metadata(r: TechniqueCoverage) -> list[tuple[str, str]]:
    """Why the technique is in its state: what fires, where, and what is missing."""
    return [
        ("state", r.state or ""),
        ("effective score", f"{r.effective_score or 0.0:g}"),
        ("coverage score", f"{r.score:g}"),
        ("rules firing", f"{r.effective_rules or 0} of {r.rules}"),
        ("rules kbmap cannot place", str(r.unknown_rules) if r.unknown_rules else ""),
        ("missing log sources", listed(r.missing_log_sources or [])),
        ("systems", listed(r.systems or [])),
        ("catalogs firing", listed(r.effective_catalogs or [])),
        ("visible data components", listed(r.visible_data_components or [])),
    ]


def _tactics(r: TechniqueCoverage) -> list[str | None]:
    """Its tactics, or one entry under none for a technique without one."""
    return [*r.tactics] or [None]
