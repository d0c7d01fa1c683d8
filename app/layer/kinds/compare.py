"""The compare layer: every technique in scope coloured by which side, A or B, covers it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from app.core.errors import InvalidInput, Location
from app.layer.kinds.base import LayerKind

if TYPE_CHECKING:
    from app.coverage.models import CatalogComparison
    from app.coverage.service import Scope
    from app.layer.entries import LayerContext
    from app.layer.navigator import Layer
    from app.layer.sources import Sources

COMPARE = {
    "both": "#018571",
    "only_a": "#7b3294",
    "only_b": "#fdb863",
    "neither": "#d9d9d9",
}


class Compared(NamedTuple):
    comparison: CatalogComparison  # what `/coverage/compare` serves
    names: Mapping[str, str]  # technique id → name


@dataclass(frozen=True)
class Compare(LayerKind[Compared]):
    """Sides are catalog names; the layer names them, not the scope's catalogs."""

    name = "compare"
    help = "Compare layer: techniques covered by --a only, --b only, both or neither."
    noun = "a comparison"
    takes_environment = True  # coverage's comparison: a side covers only where a rule can fire

    a: list[str] = field(default_factory=list)
    b: list[str] = field(default_factory=list)

    def gather(self, src: Sources, scope: Scope) -> Compared:
        if not self.a or not self.b:
            raise InvalidInput(
                "the compare layer needs a= and b= (catalogs of each side)",
                Location(field="a" if not self.a else "b"),
            )
        comparison = src.compare(scope, a=self.a, b=self.b)
        index = src.facts(scope.release).index
        return Compared(comparison, {t: i.name for t, i in index.techniques.items()})

    def build(self, ctx: LayerContext, found: Compared) -> Layer:
        from app.layer import entries as e
        from app.layer.navigator import Technique

        cmp = found.comparison
        ctx = dataclasses.replace(ctx, catalogs=[*self.a, *self.b])
        a, b = ", ".join(cmp.a), ", ".join(cmp.b)
        labels = {
            "both": f"covered by both ({a}; {b})",
            "only_a": f"only A: {a}",
            "only_b": f"only B: {b}",
            "neither": "covered by neither",
        }
        groups = {
            "both": cmp.both,
            "only_a": cmp.only_a,
            "only_b": cmp.only_b,
            "neither": cmp.neither,
        }
        out = [
            Technique(
                techniqueID=tid,
                color=COMPARE[key],
                comment=f"{found.names.get(tid, tid)}: {labels[key]}",
                links=e.technique_links(ctx, tid),
            )
            for key, ids in groups.items()
            for tid in ids
        ]
        return e.finish(
            ctx,
            out,
            name=f"compare {a} vs {b}",
            description=f"Coverage of {ctx.release}{ctx.in_environment}: A = {a}, B = {b}"
            + (
                "; a side covers a technique only where one of its rules can fire"
                if ctx.environment
                else ""
            ),
            legend=[(labels[k], COMPARE[k]) for k in groups],
            extra=[("A", a), ("B", b)],
        )
