"""What to collect next: log sources not collected, ranked by what onboarding each would make
effective.

A candidate is one data component on one system. Onboarding it makes effective every technique
in scope, not effective today, with a rule of weight > 0 that needs that component and targets a
platform the system runs: that count is exact (recomputing after onboarding gives it). Rank:
value = Σ over those techniques of their threat weight (1, or with `groups=` the number of the
named groups, software and campaigns using the technique), then rules unlocked (rules that
fire nowhere today and would), then techniques.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlmodel import Session

from app.catalog import service as catalog_service
from app.core.config import CoverageWeights
from app.core.errors import InvalidInput, Location
from app.core.pages import Page
from app.coverage.effective import Judge, Needs
from app.coverage.models import Onboarding
from app.coverage.techniques import Computed, compute

if TYPE_CHECKING:
    from app.coverage.facts import ReleaseFacts
    from app.coverage.scope import Scope

Candidate = tuple[int, str]  # (system index, lower-cased data component)
RULES_LISTED = 100  # per candidate; `rules_unlocked` counts them all


@dataclass
class _Gain:
    techniques: set[str] = field(default_factory=set)
    needs: list[Needs] = field(default_factory=list)  # whose rules it lets fire


def collect_next(
    session: Session, *, scope: Scope, weights: CoverageWeights, limit: int = 20, offset: int = 0
) -> Page[Onboarding]:
    """Ranked candidates; rules are named for the page's candidates only."""
    done = compute(session, scope=scope, weights=weights)
    if done.judge is None:
        raise InvalidInput(
            "what to collect next needs an environment", Location(field="environment")
        )
    gains, rules = _gains(done, done.judge)
    ranked = sorted(
        ((c, _candidate(c, g, rules, done, scope)) for c, g in gains.items()),
        key=lambda co: (
            -co[1].value,
            -co[1].rules_unlocked,
            -co[1].techniques_gained,
            co[1].system,
            co[1].data_component,
        ),
    )
    page = ranked[offset : offset + limit]
    _name_rules(session, page, gains, rules)
    for i, (_c, item) in enumerate(page, start=offset + 1):
        item.rank = i
    return Page(items=[o for _c, o in page], total=len(ranked), limit=limit, offset=offset)


def _gains(done: Computed, judge: Judge) -> tuple[dict[Candidate, _Gain], dict[Needs, set[int]]]:
    """Per candidate: the techniques it makes effective and the needs whose (silent) rules it
    lets fire; and those rules per needs. The verdicts group silent rules by needs: a rule has
    one, so candidates are worked out once per distinct needs, not once per rule."""
    where: dict[Needs, list[Candidate]] = {}
    rules: dict[Needs, set[int]] = defaultdict(set)
    gains: dict[Candidate, _Gain] = defaultdict(_Gain)
    for row in done.rows:
        if row.state == "effective":
            continue
        cands: set[Candidate] = set()
        for n, pks in done.verdicts[row.id].silent:
            rules[n].update(pks)
            if n not in where:
                where[n] = _candidates(n, judge)
            cands.update(where[n])
        for cand in cands:
            gains[cand].techniques.add(row.id)
    for n, cands_of_n in where.items():
        for cand in cands_of_n:
            gains[cand].needs.append(n)
    return gains, rules


def _candidates(n: Needs, judge: Judge) -> list[Candidate]:
    """The (system, component) pairs whose collection would let a rule with needs `n` fire."""
    out = []
    for i, s in enumerate(judge.reach.env.systems):
        if n.platforms and not n.platforms & s.platforms:
            continue
        out += [(i, c) for c in sorted(n.components) if c not in s.components]
    return out


def _candidate(
    c: Candidate, g: _Gain, rules: dict[Needs, set[int]], done: Computed, scope: Scope
) -> Onboarding:
    system = done.judge.reach.env.systems[c[0]] if done.judge else None
    name = done.judge.spelled.get(c[1], c[1]) if done.judge else c[1]
    return Onboarding(
        rank=0,
        system=system.name if system else "",
        data_component=name,
        data_component_id=done.facts.component_ids.get(name),
        techniques_gained=len(g.techniques),
        value=round(sum(_threat_weight(t, done.facts, scope) for t in g.techniques), 2),
        rules_unlocked=sum(len(rules[n]) for n in g.needs),  # a rule has one needs: disjoint
        techniques=sorted(g.techniques),
        rules=[],
    )


def _threat_weight(tid: str, facts: ReleaseFacts, scope: Scope) -> float:
    if not scope.threat:
        return 1.0
    users: Mapping[str, set[str]] = facts.users.get(tid, {})
    return float(sum(len(ids & set(scope.threat)) for ids in users.values()))


def _name_rules(
    session: Session,
    page: list[tuple[Candidate, Onboarding]],
    gains: dict[Candidate, _Gain],
    rules: dict[Needs, set[int]],
) -> None:
    """Name up to RULES_LISTED unlocked rules per candidate on the page, in one statement."""
    picked = {
        c: sorted(pk for n in gains[c].needs for pk in rules[n])[:RULES_LISTED] for c, _o in page
    }
    labels = catalog_service.rule_labels(session, [pk for pks in picked.values() for pk in pks])
    for c, o in page:
        o.rules = sorted(labels[pk] for pk in picked[c] if pk in labels)
