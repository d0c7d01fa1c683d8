"""The coverage layer: a score per covered technique, its covering rules in metadata and links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from app.layer.kinds.base import LayerKind

if TYPE_CHECKING:
    from app.coverage.models import TechniqueCoverage
    from app.coverage.service import Scope
    from app.layer.entries import LayerContext, RuleNotes
    from app.layer.navigator import Layer
    from app.layer.sources import Sources

COVERAGE_GRADIENT = ["#fdd49e", "#c2e699", "#31a354"]  # weak → strong; uncovered = no entry
WHITE = "#ffffff"


class Covered(NamedTuple):
    rows: Sequence[TechniqueCoverage]
    notes: Mapping[str, RuleNotes]  # technique → its covering rules


@dataclass(frozen=True)
class Coverage(LayerKind[Covered]):
    """One entry per covered (technique, tactic); per tactic only where pinned scores differ."""

    name = "coverage"
    help = "Coverage layer: score per covered technique, covering rules in metadata."
    noun = "coverage"

    min_score: float = 0.0

    def gather(self, src: Sources, scope: Scope) -> Covered:
        return Covered(src.technique_rows(scope), src.rule_notes(scope))

    def build(self, ctx: LayerContext, found: Covered) -> Layer:
        from app.layer import entries as e
        from app.layer.navigator import Gradient, MetadataItem, Technique

        out = []
        none = e.RuleNotes((), ())
        for r in found.rows:
            notes = found.notes.get(r.id, none)
            for tactic, s in e.tactic_scores(r):
                if s <= 0 or s < self.min_score:
                    continue
                where = f" under {tactic}" if tactic else ""
                cats = ", ".join(r.catalogs) or "no enabled rule"
                out.append(
                    Technique(
                        techniqueID=r.id,
                        tactic=tactic,
                        score=s,
                        comment=f"{r.name}: score {s:g}{where} from {r.rules} rule(s) in {cats}",
                        metadata=[
                            MetadataItem(name="score", value=f"{s:g}"),
                            MetadataItem(name="rules", value=str(r.rules)),
                            *notes.metadata,
                        ],
                        links=[*notes.links, *e.technique_links(ctx, r.id)],
                    )
                )
        return e.finish(
            ctx,
            out,
            name="coverage",
            description=f"Detection coverage of {ctx.release} by {e.catalogs_named(ctx)}; "
            "score 0-100 from rule status and severity, uncovered techniques have no entry",
            gradient=Gradient(colors=COVERAGE_GRADIENT, minValue=0, maxValue=100),
            legend=[
                ("not covered", WHITE),
                ("weakly covered (low score)", COVERAGE_GRADIENT[0]),
                ("well covered (score 100)", COVERAGE_GRADIENT[-1]),
            ],
        )
