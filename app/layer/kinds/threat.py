"""The threat layer: techniques the chosen groups, software or campaigns use, covered or not;
every other technique in scope is disabled."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from app.core.errors import InvalidInput, Location
from app.layer.kinds.base import LayerKind

if TYPE_CHECKING:
    from app.coverage.models import TechniqueCoverage
    from app.coverage.service import Scope
    from app.layer.entries import LayerContext
    from app.layer.navigator import Layer
    from app.layer.sources import Sources

COVERED, UNCOVERED = "#018571", "#d95f02"  # teal / dark orange: apart for colour-blind readers
UNUSED = "#eeeeee"  # the colour the picture gives a disabled technique (render.DISABLED)


class Used(NamedTuple):
    used: Sequence[TechniqueCoverage]  # rows of the techniques the threat uses
    others: Sequence[str]  # every other technique in scope
    users: Mapping[str, Sequence[tuple[str, str]]]  # technique → (id, name) of who uses it


@dataclass(frozen=True)
class Threat(LayerKind[Used]):
    """The threat is the scope's `groups=`; the rows are the coverage rows filtered by it."""

    name = "threat"
    help = "Threat layer: techniques --groups use, covered or not; the rest disabled."
    noun = "a threat"
    takes_environment = True  # with one, covered means effective there

    min_score: float = 0.0

    def gather(self, src: Sources, scope: Scope) -> Used:
        if not scope.threat:
            raise InvalidInput(
                "the threat layer needs groups= (group, software or campaign ids, e.g. G0016)",
                Location(field="groups"),
            )
        used = src.technique_rows(scope)
        every = src.technique_rows(dataclasses.replace(scope, threat=[]))
        facts = src.facts(scope.release)
        wanted = set(scope.threat)
        users = {
            r.id: sorted(
                (uid, facts.user_names.get(uid, uid))
                for ids in facts.users.get(r.id, {}).values()
                for uid in ids
                if uid in wanted
            )
            for r in used
        }
        ids = {r.id for r in used}
        return Used(used, [r.id for r in every if r.id not in ids], users)

    def build(self, ctx: LayerContext, found: Used) -> Layer:
        from app.layer import entries as e
        from app.layer.navigator import MetadataItem, Technique

        out = []
        scores = _effective if ctx.environment else e.tactic_scores
        for r in found.used:
            who = found.users.get(r.id, ())
            names = ", ".join(f"{i} {n}" for i, n in who) or ", ".join(ctx.threat)
            for tactic, s in scores(r):
                ok = s > 0 and s >= self.min_score
                out.append(
                    Technique(
                        techniqueID=r.id,
                        tactic=tactic,
                        color=COVERED if ok else UNCOVERED,
                        comment=f"{r.name}: used by {names}; " + _said(r, s, ok),
                        metadata=[
                            MetadataItem(name=_SCORE[r.state is not None], value=f"{s:g}"),
                            *(MetadataItem(name=f"used by {i}", value=n) for i, n in who),
                        ],
                        links=e.technique_links(ctx, r.id),
                    )
                )
        out += [Technique(techniqueID=t, enabled=False) for t in sorted(set(found.others))]
        covered = "effective" if ctx.environment else "covered"
        return e.finish(
            ctx,
            out,
            name=f"threat {' '.join(ctx.threat)}",
            description=f"Techniques {', '.join(ctx.threat)} use in {ctx.release}, {covered} or "
            f"not by {e.catalogs_named(ctx)}{ctx.in_environment}; techniques they are not known "
            "to use are disabled",
            legend=[
                (f"used, {covered}", COVERED),
                (f"used, not {covered}", UNCOVERED),
                ("not used (disabled)", UNUSED),
            ],
        )


_SCORE = {False: "coverage score", True: "effective score"}


def _effective(r: TechniqueCoverage) -> list[tuple[str | None, float]]:
    """One entry with its effective score: the environment judges the technique, not a tactic."""
    return [(None, r.effective_score or 0.0)]


def _said(r: TechniqueCoverage, s: float, ok: bool) -> str:
    if r.state is None:
        return f"covered (score {s:g})" if ok else "not covered"
    if ok:
        return f"effective (score {s:g})"
    return f"not effective here: {r.state}" + (f" (effective score {s:g})" if s > 0 else "")
