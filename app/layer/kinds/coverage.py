"""The coverage layer: a score per covered technique, its covering rules in metadata and links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from app.layer.kinds.base import LayerKind, listed

if TYPE_CHECKING:
    from app.coverage.models import TechniqueCoverage
    from app.coverage.service import Scope
    from app.layer.entries import LayerContext, RuleNotes
    from app.layer.navigator import Layer
    from app.layer.sources import Sources

COVERAGE_GRADIENT = ["#fdd49e", "#80cdc1", "#018571"]  # weak → strong; uncovered = no entry
# light orange → teal: the ends differ in lightness and in blue, so they stay apart under every
# common colour-vision deficiency (a green end collapsed into the orange one for deuteranopes)
WHITE = "#ffffff"


class Covered(NamedTuple):
    rows: Sequence[TechniqueCoverage]
    notes: Mapping[str, RuleNotes]  # technique → its covering rules


class Scored(NamedTuple):
    """One entry's content, before it is a Navigator entry."""

    tactic: str | None
    score: float
    comment: str
    metadata: list[tuple[str, str]]


@dataclass(frozen=True)
class Coverage(LayerKind[Covered]):
    """One entry per covered (technique, tactic); per tactic only where pinned scores differ.
    With environment=, one entry per technique one of whose rules can fire, scored by its
    effective score."""

    name = "coverage"
    help = "Coverage layer: score per covered technique, covering rules in metadata."
    noun = "coverage"
    takes_environment = True

    min_score: float = 0.0

    def gather(self, src: Sources, scope: Scope) -> Covered:
        return Covered(src.technique_rows(scope), src.rule_notes(scope))

    def build(self, ctx: LayerContext, found: Covered) -> Layer:
        from app.layer import entries as e
        from app.layer.navigator import Gradient, Technique

        out = []
        none = e.RuleNotes((), ())
        judged = ctx.environment is not None
        for r in found.rows:
            notes = found.notes.get(r.id, none)
            for x in self._judged(r) if judged else self._scored(r, e.tactic_scores(r)):
                out.append(
                    Technique(
                        techniqueID=r.id,
                        tactic=x.tactic,
                        score=x.score,
                        comment=x.comment,
                        metadata=[*e.metadata(x.metadata), *notes.metadata],
                        links=[*notes.links, *e.technique_links(ctx, r.id)],
                    )
                )
        return e.finish(
            ctx,
            out,
            name="coverage",
            description=_description(ctx, e.catalogs_named(ctx)),
            gradient=Gradient(colors=COVERAGE_GRADIENT, minValue=0, maxValue=100),
            legend=[
                ("not covered" + (" by a rule that can fire" if judged else ""), WHITE),
                ("weakly covered (low score)", COVERAGE_GRADIENT[0]),
                ("well covered (score 100)", COVERAGE_GRADIENT[-1]),
            ],
        )

    def _scored(self, r: TechniqueCoverage, scores: list[tuple[str | None, float]]) -> list[Scored]:
        """Per tactic where pinned scores differ: the score of all its rules."""
        out = []
        for tactic, s in scores:
            if s <= 0 or s < self.min_score:
                continue
            where = f" under {tactic}" if tactic else ""
            cats = ", ".join(r.catalogs) or "no enabled rule"
            comment = f"{r.name}: score {s:g}{where} from {r.rules} rule(s) in {cats}"
            out.append(Scored(tactic, s, comment, [("score", f"{s:g}"), ("rules", str(r.rules))]))
        return out

    def _judged(self, r: TechniqueCoverage) -> list[Scored]:
        """One entry scored by its effective score: the environment judges the technique, not
        one of its tactics."""
        s = r.effective_score or 0.0
        if s <= 0 or s < self.min_score:
            return []
        firing = f"{r.effective_rules or 0} of {r.rules}"
        cats = ", ".join(r.effective_catalogs or [])
        meta = [
            ("effective score", f"{s:g}"),
            ("coverage score", f"{r.score:g}"),
            ("rules firing", firing),
            ("systems", listed(r.systems or [])),
        ]
        return [
            Scored(
                None, s, f"{r.name}: effective score {s:g}, {firing} rule(s) fire ({cats})", meta
            )
        ]


def _description(ctx: LayerContext, catalogs: str) -> str:
    if ctx.environment is None:
        return (
            f"Detection coverage of {ctx.release} by {catalogs}; "
            "score 0-100 from rule status and severity, uncovered techniques have no entry"
        )
    return (
        f"Effective detection coverage of {ctx.release} by {catalogs}{ctx.in_environment}; "
        "score 0-100 = effective score (only the rules that can fire on the environment's "
        "telemetry, × data quality), techniques no rule can fire on have no entry"
    )
