"""Can this rule fire here? One rule at a time in an environment, with the reason when it cannot.

The technique page asks it per rule it lists. The judging is effective coverage's own
(`catalog_needs`, `reach_of`, `Needs`), so a rule said to fire here is one that makes a
technique `effective`, and a rule of weight 0 (disabled, or a status the weights discount) never
counts, as in every coverage answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from sqlmodel import Session

from app.catalog import service as catalog_service
from app.core.config import CoverageWeights
from app.coverage.effective import Needs, Reach, catalog_needs, reach_of, system_names
from app.coverage.facts import release_facts
from app.coverage.scoring import rule_weight

if TYPE_CHECKING:
    from app.attack.service import TechniqueInfo
    from app.coverage.scope import Scope


class Firing(NamedTuple):
    """One rule in one environment: where it fires, else why it cannot."""

    fires: bool
    systems: list[str]
    why_not: str | None


UNKNOWN = "its log sources are not placed by kbmap (unknown)"
DOES_NOT_COUNT = "disabled or deprecated: does not count"
_NOT_IN_CATALOGS = "not a rule of the catalogs in scope"


def rule_firing(
    session: Session,
    *,
    scope: Scope,
    rules: Iterable[tuple[str, str]],
    weights: CoverageWeights,
) -> dict[tuple[str, str], Firing]:
    """(catalog name, rule id) → whether it fires in the scope's environment; {} without one."""
    env = scope.environment
    if env is None:
        return {}
    wanted = list(dict.fromkeys(rules))
    by_name = {c.name: c for c in scope.catalogs}
    pairs = [(by_name[c].id or 0, r) for c, r in wanted if c in by_name]
    states = catalog_service.rule_states(session, pairs)
    facts = release_facts(session, release=scope.release)
    words = _Words.of(facts.index.techniques.values(), facts.component_ids)
    reach = reach_of(session, env.telemetry)
    out: dict[tuple[str, str], Firing] = {}
    for cname, rid in wanted:
        catalog = by_name.get(cname)
        state = states.get((catalog.id or 0, rid)) if catalog else None
        if catalog is None or state is None:
            out[(cname, rid)] = Firing(False, [], _NOT_IN_CATALOGS)
            continue
        if _weight(state, weights) <= 0:
            out[(cname, rid)] = Firing(False, [], DOES_NOT_COUNT)
            continue
        table = catalog_needs(session, catalog=catalog, env=env, known=words.known)
        needs = table.get(state.pk, Needs(frozenset(), frozenset()))
        out[(cname, rid)] = judge_rule(reach, needs, words)
    return out


def _weight(state: catalog_service.RuleState, weights: CoverageWeights) -> float:
    return rule_weight(enabled=state.enabled, status=state.status, level=state.severity, w=weights)


class _Words(NamedTuple):
    """How the release spells the lower-cased names the judging works with."""

    platforms: Mapping[str, str]
    components: Mapping[str, str]

    @classmethod
    def of(cls, techniques: Iterable[TechniqueInfo], components: Iterable[str]) -> _Words:
        plats = {p.lower(): p for t in techniques for p in t.platforms}
        return cls(plats, {c.lower(): c for c in components})

    @property
    def known(self) -> frozenset[str]:
        return frozenset(self.platforms)


def judge_rule(reach: Reach, needs: Needs, words: _Words) -> Firing:
    """One rule by its needs: fires on some system, else the first reason it cannot."""
    if not needs.components:
        return Firing(False, [], UNKNOWN)
    mask, _ = reach.fires(needs)
    if mask:
        return Firing(True, system_names(reach.env, mask), None)
    plats = sorted(words.platforms.get(p, p) for p in needs.platforms)
    if needs.platforms and not any(s.platforms & needs.platforms for s in reach.env.systems):
        return Firing(False, [], f"no system runs {', '.join(plats)}")
    comps = ", ".join(sorted(words.components.get(c, c) for c in needs.components))
    where = "a system of its platforms" if needs.platforms else "any system"
    return Firing(False, [], f"not collected on {where}: {comps}")
