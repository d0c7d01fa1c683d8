"""Where one rule can fire: each imported environment of the rule's domain, judged by effective
coverage's own rule judging (`rule_firing`), so the rule page agrees with the technique page and
the effective matrix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from app.attack import service as attack_service
from app.core.config import CoverageWeights
from app.coverage.firing import rule_firing
from app.coverage.scope import make_scope
from app.environment import service as environment_service


@dataclass(frozen=True)
class RulePlace:
    """One environment and whether the rule fires there: on which systems, else why not."""

    environment: str
    fires: bool
    systems: list[str]
    why_not: str | None


def rule_places(
    session: Session,
    *,
    catalog: str,
    rule_id: str,
    domain: str,
    version: str,
    kb_dir: Path,
    weights: CoverageWeights,
) -> list[RulePlace]:
    """Every environment of `domain`, read in the catalog's release (`version`) when it is loaded,
    else the newest of the domain; environments of other domains are left out (they cannot run a
    rule of this one)."""
    release = attack_service.find_release(session, domain=domain, version=version)
    if release is None:
        release = attack_service.get_release(session, domain=domain, version=None)
    out = []
    for env in environment_service.list_environments(session):
        if env.domain != domain:
            continue
        scope = make_scope(
            session, release=release, catalogs=[catalog], environment=env.name, kb_dir=kb_dir
        )
        f = rule_firing(session, scope=scope, rules=[(catalog, rule_id)], weights=weights)
        got = f[(catalog, rule_id)]
        out.append(RulePlace(env.name, got.fires, list(got.systems), got.why_not))
    return out
