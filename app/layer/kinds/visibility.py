"""The visibility layer: per technique, the share of the data components that can detect it which
an environment collects on a system of its platforms — visibility without rules (DeTT&CT scores it
by hand, 0-4; here a percentage)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from app.layer.kinds.base import LayerKind, listed
from app.layer.kinds.effective import need_environment

if TYPE_CHECKING:
    from app.coverage.models import TechniqueCoverage
    from app.coverage.service import Scope
    from app.layer.entries import LayerContext
    from app.layer.navigator import Layer
    from app.layer.sources import Sources

VISIBILITY_GRADIENT = ["#fcbba1", "#9ecae1", "#08519c"]  # none → some → every one collected
UNDETECTABLE = "#d9d9d9"  # no data component of the release can detect it


class Seen(NamedTuple):
    rows: Sequence[TechniqueCoverage]
    exceptions: frozenset[str]  # techniques the environment excludes from visibility


@dataclass(frozen=True)
class Visibility(LayerKind[Seen]):
    """Score = 100 × collected / detecting data components; an excepted technique scores 0
    (its row already sees nothing)."""

    name = "visibility"
    help = "Visibility layer: % of the data components detecting a technique that --env collects."
    noun = "visibility"
    takes_environment = True

    def gather(self, src: Sources, scope: Scope) -> Seen:
        env = need_environment(scope, self.name)
        return Seen(src.technique_rows(scope), env.exceptions)

    def build(self, ctx: LayerContext, found: Seen) -> Layer:
        from app.layer import entries as e
        from app.layer.navigator import Gradient, Technique

        out = []
        for r in found.rows:
            pct = visibility(r)
            out.append(
                Technique(
                    techniqueID=r.id,
                    score=pct,
                    color=UNDETECTABLE if pct is None else None,
                    comment=_comment(r, pct, r.id in found.exceptions),
                    metadata=e.metadata(_metadata(r, pct, r.id in found.exceptions)),
                    links=e.technique_links(ctx, r.id),
                )
            )
        return e.finish(
            ctx,
            out,
            name=f"visibility {ctx.environment}",
            description=f"Visibility of {ctx.release}{ctx.in_environment}: score = % of the data "
            "components that can detect a technique (≤17 detects, 18+ analytics' log sources) "
            "collected on a system of its platforms; no rule needed",
            gradient=Gradient(colors=VISIBILITY_GRADIENT, minValue=0, maxValue=100),
            legend=[
                ("no detecting data component collected (0%)", VISIBILITY_GRADIENT[0]),
                ("some collected", VISIBILITY_GRADIENT[1]),
                ("every detecting data component collected (100%)", VISIBILITY_GRADIENT[-1]),
                ("no data component can detect it", UNDETECTABLE),
            ],
            with_catalogs=False,
        )


def visibility(r: TechniqueCoverage) -> float | None:
    """Percent of its detecting data components collected; None when nothing can detect it."""
    if not r.detectable_by:
        return None
    return round(100 * len(r.visible_data_components or ()) / r.detectable_by, 2)


def _comment(r: TechniqueCoverage, pct: float | None, excepted: bool) -> str:
    if pct is None:
        return "no data component can detect it"
    if excepted:
        return "excluded from visibility by the environment: 0%"
    seen = len(r.visible_data_components or ())
    return f"{seen} of {r.detectable_by} detecting data components collected: {pct:g}%"


def _metadata(r: TechniqueCoverage, pct: float | None, excepted: bool) -> list[tuple[str, str]]:
    return [
        ("visibility", "" if pct is None else f"{pct:g}%"),
        ("collected data components", listed(r.visible_data_components or [])),
        ("data components that can detect it", str(r.detectable_by or 0)),
        ("excluded by the environment", "yes" if excepted else ""),
    ]
