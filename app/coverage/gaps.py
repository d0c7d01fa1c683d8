"""Gaps: uncovered and weak techniques ranked by who uses them, where, and what telemetry the
caller already collects (a cheap gap is one rule away)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlmodel import Session

from app.attack import service as attack_service
from app.core.config import CoverageWeights
from app.core.errors import InvalidInput, Location
from app.core.pages import Page
from app.coverage.facts import ReleaseFacts, release_facts
from app.coverage.models import Gap, PriorityParts, TechniqueCoverage
from app.coverage.scope import Scope, split_values
from app.coverage.techniques import technique_rows

if TYPE_CHECKING:  # the row type for annotations only: the reads go through the attack service
    from app.attack.tables import Release

THREAT_WEIGHT = 10.0  # × ln(1 + groups + software + campaigns using the technique)
PLATFORM_WEIGHT = 2.0  # × platforms of interest the technique spans
CHEAP_BONUS = 15.0  # telemetry already collected: a rule is all that is missing
# an environment's state → the gap's telemetry: `cheap` is `telemetry_only` under its old name
_TELEMETRY_OF = {
    "effective": "effective",  # weakly: below min_score
    "rule_without_telemetry": "rule_without_telemetry",
    "telemetry_only": "cheap",
    "blind": "blind",
    "unknown": "unknown",
}


def gaps(
    session: Session,
    *,
    scope: Scope,
    weights: CoverageWeights,
    collected: Sequence[str] | None = None,
    min_score: float = 0.0,
    rows: Sequence[TechniqueCoverage] | None = None,
) -> list[Gap]:
    """Uncovered (score 0) and weak (score < min_score) techniques, highest priority first.
    With an environment, a technique is covered only where a rule can fire (`effective`), and
    its state is its telemetry. `rows`: the scope's technique rows when the caller has them
    already (an object page lists them too)."""
    if scope.environment is not None and collected:
        raise InvalidInput(
            "give collected= or environment=, not both: the environment says what is collected",
            Location(field="collected"),
        )
    facts = release_facts(session, release=scope.release)
    have = _collected(facts, collected)
    plats = {p.lower() for p in scope.platforms}
    threat = set(scope.threat)
    out = [
        _gap(r, facts, have=have, plats=plats, threat=threat)
        for r in (technique_rows(session, scope=scope, weights=weights) if rows is None else rows)
        if _is_gap(r, min_score)
    ]
    out.sort(key=lambda g: (-g.priority, g.id))
    return out


def _is_gap(r: TechniqueCoverage, min_score: float) -> bool:
    if r.state is None:
        return not (r.covered and r.score >= min_score)
    return not (r.state == "effective" and (r.effective_score or 0.0) >= min_score)


def _collected(facts: ReleaseFacts, collected: Sequence[str] | None) -> set[str]:
    """The caller's collected data components, lower-cased; an unknown name is an error."""
    have = {c.lower() for c in split_values(collected)}
    known = {dc.lower() for dcs in facts.data_components.values() for dc in dcs}
    unknown = sorted(c for c in have if c not in known)
    if unknown:
        raise InvalidInput(f"unknown data component(s) in collected: {', '.join(unknown)}")
    return have


def _gap(
    r: TechniqueCoverage,
    facts: ReleaseFacts,
    *,
    have: set[str],
    plats: set[str],
    threat: set[str],
) -> Gap:
    """One gap with its priority: (threat + platforms + cheap bonus) × weakness."""
    users = facts.users.get(r.id, {})
    ids = {k: sorted(v & threat) if threat else sorted(v) for k, v in users.items()}
    uses = sum(len(v) for v in ids.values())
    span = len([p for p in r.platforms if not plats or p.lower() in plats])
    dcs = sorted(facts.data_components.get(r.id, ()))
    if r.state is not None:  # the environment's answer
        got, telemetry = list(r.visible_data_components or ()), _TELEMETRY_OF[r.state]
        weakness = round(1.0 - (r.effective_score or 0.0) / 100, 3)
    else:
        got = [d for d in dcs if d.lower() in have]
        telemetry = "unknown" if not have else ("cheap" if got else "blind")
        weakness = round(1.0 - r.score / 100, 3)
    parts = PriorityParts(
        threat_uses=uses,
        threat=round(THREAT_WEIGHT * math.log1p(uses), 2),
        platform_span=span,
        platforms=PLATFORM_WEIGHT * span,
        telemetry=telemetry,
        telemetry_bonus=CHEAP_BONUS if telemetry == "cheap" else 0.0,
        weakness=weakness,
    )
    return Gap(
        id=r.id,
        name=r.name,
        tactics=r.tactics,
        platforms=r.platforms,
        score=r.score,
        priority=round((parts.threat + parts.platforms + parts.telemetry_bonus) * weakness, 2),
        parts=parts,
        groups=ids.get("group", []),
        software=ids.get("software", []),
        campaigns=ids.get("campaign", []),
        data_components=dcs,
        collected_data_components=got,
        detection_strategies=sorted(s[0] or "" for s in facts.strategies.get(r.id, ())),
        analytics=sorted(facts.analytics.get(r.id, ())),
        mitigations=[],
        state=r.state,
        missing_log_sources=r.missing_log_sources,
    )


def with_mitigations(session: Session, *, release: Release, items: list[Gap]) -> list[Gap]:
    """Fill mitigations (compensating controls) for the gaps of one page only."""
    found = attack_service.mitigations_for(
        session, release=release, technique_ids=[g.id for g in items]
    )
    for g in items:
        g.mitigations = [{"id": m.id or "", "name": m.name} for m in found.get(g.id, [])]
    return items


def gap_page(
    session: Session,
    *,
    scope: Scope,
    weights: CoverageWeights,
    collected: Sequence[str] | None = None,
    min_score: float = 0.0,
    limit: int = 100,
    offset: int = 0,
) -> Page[Gap]:
    """A page of gaps; mitigations are looked up for that page only."""
    found = gaps(session, scope=scope, weights=weights, collected=collected, min_score=min_score)
    items = with_mitigations(session, release=scope.release, items=found[offset : offset + limit])
    return Page(items=items, total=len(found), limit=limit, offset=offset)
