"""Effective coverage: which rules can fire in an environment, and each technique's state.

A rule fires when one system runs a platform the rule targets (a rule naming no ATT&CK platform
targets any) and collects a data component the rule's log sources provide. Per technique, with
its own rules of weight > 0:

- `effective`: a rule fires;
- `unknown`: none fires, but a rule's log sources could not be placed (it might);
- `rule_without_telemetry`: rules exist, every one placed, none can fire here;
- `telemetry_only`: no rule, but a data component that can detect it is collected on a system
  of one of its platforms (the cheap gap: a rule is all that is missing);
- `blind`: neither.

The effective score is the coverage score over firing rules, each weighed × the best quality
factor of what lets it fire (mean of the given data-quality dimensions / 5; 1 when none is
given). Rules sharing platforms and data components are judged once (`Reach.fires`), so 100k
rules cost a dict probe each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from sqlmodel import Session

from app.attack import service as attack_service
from app.catalog import service as catalog_service
from app.core.cache import CacheSpec, cached
from app.core.config import CoverageWeights
from app.coverage.scoring import score

if TYPE_CHECKING:
    from app.attack.service import TechniqueInfo
    from app.catalog.tables import Catalog
    from app.coverage.facts import ReleaseFacts
    from app.coverage.scope import EnvironmentScope, Scope
    from app.environment.service import EnvironmentTelemetry

STATES = ("effective", "rule_without_telemetry", "telemetry_only", "blind", "unknown")
_NO_PLATFORM = "none"  # ATT&CK ICS 18 gives its techniques the platform "None"


@dataclass(frozen=True)
class Needs:
    """What a rule needs to fire (lower-cased): empty platforms = any, empty components =
    kbmap could not place its log sources."""

    platforms: frozenset[str]
    components: frozenset[str]


class Verdict(NamedTuple):
    """One technique in one environment."""

    state: str
    score: float  # over firing rules, quality-weighed
    firing: int  # rules that fire
    unknown: int  # rules whose log sources kbmap cannot place
    missing: frozenset[str]  # data components its placed, silent rules need
    systems: int  # bit i: system i lets one of its rules fire
    catalogs: frozenset[str]  # catalogs with a firing rule
    visible: tuple[str, ...]  # data components that can detect it and are collected
    detectable_by: int  # data components that can detect it
    silent: tuple[
        tuple[Needs, tuple[int, ...]], ...
    ] = ()  # placed rules that cannot fire, by needs


CATALOG_NEEDS: CacheSpec[dict[int, Needs]] = CacheSpec("coverage.catalog_needs", 64)
REACH: CacheSpec[Reach] = CacheSpec("coverage.reach", 32)
# technique → verdict, filled as techniques are asked: a verdict depends on the release, the
# catalogs' rules and weights and the environment, never on a request's filters
VERDICTS: CacheSpec[dict[str, Verdict]] = CacheSpec("coverage.verdicts", 32)
RULE_COUNTS: CacheSpec[tuple[int, int, int]] = CacheSpec("coverage.rule_counts", 64)


def catalog_needs(
    session: Session, *, catalog: Catalog, env: EnvironmentScope, known: frozenset[str]
) -> dict[int, Needs]:
    """Rule pk → its needs; once per import and release platform set. Equal needs are one
    object, so judging them once per environment is a dict probe."""
    key = (catalog_service.catalog_key(catalog), tuple(sorted(known)))
    return cached(session, CATALOG_NEEDS, key, lambda: _needs(session, catalog, env, known))


def _needs(
    session: Session, catalog: Catalog, env: EnvironmentScope, known: frozenset[str]
) -> dict[int, Needs]:
    interned: dict[Needs, Needs] = {}
    out: dict[int, Needs] = {}
    for pk, platforms, components in catalog_service.rule_telemetry(
        session, catalog_id=catalog.id or 0
    ):
        n = Needs(
            env.rule_platforms.attack_platforms(platforms, known),
            frozenset(c.lower() for c in components),
        )
        out[pk] = interned.setdefault(n, n)
    return out


@dataclass
class Reach:
    """One environment indexed for two questions: where does a rule with these needs fire, and
    is a data component collected on a system of these platforms."""

    env: EnvironmentTelemetry
    holders: dict[str, list[tuple[int, frozenset[str], float]]] = field(default_factory=dict)
    platforms_of: dict[str, set[str]] = field(default_factory=dict)  # component → platforms
    anywhere: set[str] = field(default_factory=set)  # components collected on some system
    memo: dict[Needs, tuple[int, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, env: EnvironmentTelemetry) -> Reach:
        reach = cls(env)
        for i, s in enumerate(env.systems):
            for c, q in s.components.items():
                reach.holders.setdefault(c, []).append((i, s.platforms, q))
                reach.platforms_of.setdefault(c, set()).update(s.platforms)
                reach.anywhere.add(c)
        return reach

    def fires(self, needs: Needs) -> tuple[int, float]:
        """(bit mask of the systems it fires on, best quality factor there); (0, 0) if none."""
        found = self.memo.get(needs)
        if found is None:
            found = self.memo[needs] = self._fires(needs)
        return found

    def _fires(self, needs: Needs) -> tuple[int, float]:
        mask, best = 0, 0.0
        for c in needs.components:
            for i, plats, q in self.holders.get(c, ()):
                if not needs.platforms or plats & needs.platforms:
                    mask |= 1 << i
                    best = max(best, q)
        return mask, best

    def collectors(self, component: str) -> int:
        """Bit mask of the systems that collect `component`."""
        mask = 0
        for i, _plats, _q in self.holders.get(component, ()):
            mask |= 1 << i
        return mask

    def running(self, platforms: frozenset[str]) -> int:
        """Bit mask of the systems that run one of `platforms` (every system when empty)."""
        mask = 0
        for i, s in enumerate(self.env.systems):
            if not platforms or s.platforms & platforms:
                mask |= 1 << i
        return mask

    def sees(self, component: str, platforms: frozenset[str]) -> bool:
        """Collected on a system running one of `platforms` (any system when empty)."""
        if not platforms:
            return component in self.anywhere
        return bool(self.platforms_of.get(component, set()) & platforms)


def rule_counts(
    session: Session, *, catalog: Catalog, env: EnvironmentScope, known: frozenset[str]
) -> tuple[int, int, int]:
    """The catalog's rules that (fire, cannot fire, cannot be placed) in the environment; once
    per import of each."""
    key = (catalog_service.catalog_key(catalog), env.telemetry.key, tuple(sorted(known)))

    def count() -> tuple[int, int, int]:
        reach = reach_of(session, env.telemetry)
        per_needs = Counter(catalog_needs(session, catalog=catalog, env=env, known=known).values())
        firing = sum(k for n, k in per_needs.items() if n.components and reach.fires(n)[0])
        unknown = sum(k for n, k in per_needs.items() if not n.components)
        return firing, sum(per_needs.values()) - firing - unknown, unknown

    return cached(session, RULE_COUNTS, key, count)


def reach_of(session: Session, env: EnvironmentTelemetry) -> Reach:
    return cached(session, REACH, env.key, lambda: Reach.of(env))


def technique_platforms(info: TechniqueInfo) -> frozenset[str]:
    """Lower-cased; empty (any system) when ATT&CK gives none or "None" (ICS 18)."""
    return frozenset(p.lower() for p in info.platforms) - {_NO_PLATFORM}


@dataclass
class Judge:
    """Judges techniques of one scope in one environment."""

    reach: Reach
    facts: ReleaseFacts
    needs: Sequence[tuple[str, Mapping[int, Needs]]]  # (catalog name, rule pk → needs)
    weights: CoverageWeights
    spelled: Mapping[str, str] = field(default_factory=dict)  # lower-cased → as ATT&CK spells it
    memo: dict[str, Verdict] = field(default_factory=dict)  # VERDICTS' entry for this scope
    names: dict[int, list[str]] = field(default_factory=dict)  # system mask → names

    def verdict(self, tid: str, info: TechniqueInfo, per_rule: Mapping[int, float]) -> Verdict:
        """The technique's verdict, judged once per release, catalogs and environment."""
        found = self.memo.get(tid)
        if found is None:
            found = self.memo[tid] = self(tid, info, per_rule)
        return found

    def system_names(self, mask: int) -> list[str]:
        found = self.names.get(mask)
        if found is None:
            found = self.names[mask] = system_names(self.reach.env, mask)
        return list(found)

    def __call__(self, tid: str, info: TechniqueInfo, per_rule: Mapping[int, float]) -> Verdict:
        firing: list[float] = []
        unknown, systems = 0, 0
        silent: dict[Needs, list[int]] = {}
        catalogs: set[str] = set()
        for pk, w in per_rule.items():
            if w <= 0:
                continue
            cname, n = self.catalog_needs_of(pk)
            if not n.components:
                unknown += 1
                continue
            mask, q = self.reach.fires(n)
            if mask:
                firing.append(w * q)
                systems |= mask
                catalogs.add(cname)
            else:
                silent.setdefault(n, []).append(pk)
        missing = {c for n in silent for c in n.components}
        visible, total = self._visibility(tid, info)
        state = _state(bool(firing), unknown, bool(missing), bool(visible))
        spelled = self.spelled
        return Verdict(
            state,
            score(firing, self.weights) if firing else 0.0,
            len(firing),
            unknown,
            frozenset(spelled.get(c, c) for c in missing),
            systems,
            frozenset(catalogs),
            visible,
            total,
            tuple((n, tuple(pks)) for n, pks in silent.items()),
        )

    def catalog_needs_of(self, pk: int) -> tuple[str, Needs]:
        """(its catalog's name, its needs); rule pks are unique across catalogs."""
        for cname, table in self.needs:
            n = table.get(pk)
            if n is not None:
                return cname, n
        return "", Needs(frozenset(), frozenset())

    def _visibility(self, tid: str, info: TechniqueInfo) -> tuple[tuple[str, ...], int]:
        """The data components that can detect it and are collected on one of its platforms;
        none for a technique the environment lists as an exception."""
        detectable = self.facts.data_components.get(tid, set())
        if tid in self.reach.env.exceptions:
            return (), len(detectable)
        plats = technique_platforms(info)
        seen = sorted(dc for dc in detectable if self.reach.sees(dc.lower(), plats))
        return tuple(seen), len(detectable)


def _state(firing: bool, unknown: int, silent: bool, visible: bool) -> str:
    if firing:
        return "effective"
    if unknown:
        return "unknown"
    if silent:
        return "rule_without_telemetry"
    return "telemetry_only" if visible else "blind"


def make_judge(
    session: Session, *, scope: Scope, facts: ReleaseFacts, weights: CoverageWeights
) -> Judge | None:
    """The judge of `scope`'s environment; None when the scope names none."""
    env = scope.environment
    if env is None:
        return None
    known = frozenset(p.lower() for info in facts.index.techniques.values() for p in info.platforms)
    needs = [
        (c.name, catalog_needs(session, catalog=c, env=env, known=known)) for c in scope.catalogs
    ]
    spelled = {**env.telemetry.spelled, **{n.lower(): n for n in facts.component_ids}}
    key = (
        attack_service.release_key(scope.release),
        env.telemetry.key,
        tuple(catalog_service.catalog_key(c) for c in scope.catalogs),
        weights.model_dump_json(),
    )
    memo = cached(session, VERDICTS, key, dict)
    return Judge(reach_of(session, env.telemetry), facts, needs, weights, spelled, memo)


def system_names(env: EnvironmentTelemetry, mask: int) -> list[str]:
    return [s.name for i, s in enumerate(env.systems) if mask >> i & 1]


def count_states(states: Iterable[str | None]) -> dict[str, int]:
    out = dict.fromkeys(STATES, 0)
    for s in states:
        if s is not None:
            out[s] += 1
    return out
