"""An index of one release held in memory, for validating and scoring many mappings at once:
technique states, tactics in matrix order, the filter vocabulary, analytics, mitigations.

Each is built once per loaded release and kept in the database's cache owner under
`release_key(release)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from app.attack.models import Ref, TacticRead
from app.attack.relationships import mitigation_links, relationships
from app.attack.releases import find_release, release_key
from app.attack.stix import DOMAINS
from app.attack.tables import AttackObject, Release
from app.attack.vocabulary import THREAT_KINDS, Vocabulary, threat_names
from app.core.cache import CacheSpec, cached


def list_tactics(session: Session, *, release: Release) -> list[TacticRead]:
    """Tactics in the matrix's own order (the first matrix of the domain)."""
    objs = session.exec(
        select(AttackObject).where(
            AttackObject.release_id == release.id,
            col(AttackObject.kind).in_(("tactic", "matrix")),
        )
    ).all()
    tactics = {o.stix_id: o for o in objs if o.kind == "tactic"}
    matrices = sorted((o for o in objs if o.kind == "matrix"), key=lambda m: m.stix_id)
    order: list[str] = []
    for m in matrices:
        order += [t for t in m.data.get("tactic_refs") or () if t in tactics and t not in order]
    order += sorted(t for t in tactics if t not in order)
    return [
        TacticRead(
            id=tactics[t].attack_id,
            name=tactics[t].name,
            shortname=str(tactics[t].data.get("shortname", "")),
            description=tactics[t].description,
            order=i,
        )
        for i, t in enumerate(order)
        if not tactics[t].deprecated and not tactics[t].revoked
    ]


@dataclass(frozen=True)
class TechniqueInfo:
    id: str
    name: str
    status: str  # active | revoked | deprecated
    tactics: tuple[str, ...]
    platforms: tuple[str, ...]
    is_subtechnique: bool
    revoked_by: str | None  # the next id in the revoked-by chain


@dataclass
class TechniqueIndex:
    """Every technique id of a release with its state, plus tactic names, in memory."""

    domain: str
    version: str
    release_id: int
    techniques: dict[str, TechniqueInfo]
    tactics: list[TacticRead]
    other_domains: dict[str, str]  # technique id → domain, for ids found only in other domains
    # attack-pattern STIX id → technique id: a STIX bundle may name a technique only by its id
    by_stix: dict[str, str] = field(default_factory=dict)

    def final(self, attack_id: str) -> tuple[str, list[str]]:
        """Follow revoked-by to its end; returns the final id and the chain walked."""
        chain = [attack_id]
        current = attack_id
        while (info := self.techniques.get(current)) and info.revoked_by and len(chain) < 20:
            current = info.revoked_by
            if current in chain:
                break
            chain.append(current)
        return current, chain

    def active_ids(self) -> list[str]:
        return sorted(k for k, v in self.techniques.items() if v.status == "active")


TECHNIQUE_INDEX: CacheSpec[TechniqueIndex] = CacheSpec("attack.technique_index")


# Technique id → its analytics (18+): (analytic id, [(log source name, channel)])
AnalyticsByTechnique = dict[str, list[tuple[str, list[tuple[str, str]]]]]
ANALYTICS: CacheSpec[AnalyticsByTechnique] = CacheSpec("attack.analytics_by_technique")


def technique_index(session: Session, *, release: Release) -> TechniqueIndex:
    """Every technique of a release with its state; built once per loaded release."""
    return cached(
        session,
        TECHNIQUE_INDEX,
        release_key(release),
        lambda: _build_technique_index(session, release),
    )


def _build_technique_index(session: Session, release: Release) -> TechniqueIndex:
    rid = release.id or 0
    rows = session.exec(
        select(AttackObject).where(AttackObject.release_id == rid, AttackObject.kind == "technique")
    ).all()
    by_stix = {o.stix_id: o for o in rows}
    revoked_by: dict[str, str] = {}
    links = relationships(  # revoked-by counts whatever its own flags say
        session, release_id=rid, types=["revoked-by"], include_revoked=True, include_deprecated=True
    )
    for r in links:
        src, dst = by_stix.get(r.source_ref), by_stix.get(r.target_ref)
        if src and dst and src.attack_id and dst.attack_id:
            revoked_by[src.attack_id] = dst.attack_id
    techniques = {
        o.attack_id: TechniqueInfo(
            id=o.attack_id,
            name=o.name,
            status="revoked" if o.revoked else ("deprecated" if o.deprecated else "active"),
            tactics=tuple(p["phase_name"] for p in o.data.get("kill_chain_phases") or ()),
            platforms=tuple(o.platforms),
            is_subtechnique=bool(o.data.get("is_subtechnique")),
            revoked_by=revoked_by.get(o.attack_id),
        )
        for o in rows
        if o.attack_id
    }
    others: dict[str, str] = {}
    for d in DOMAINS:
        if d == release.domain:
            continue
        other = find_release(session, domain=d)
        if other is None:
            continue
        for aid in session.exec(
            select(AttackObject.attack_id).where(
                AttackObject.release_id == other.id, AttackObject.kind == "technique"
            )
        ).all():
            if aid and aid not in techniques:
                others.setdefault(aid, d)
    return TechniqueIndex(
        domain=release.domain,
        version=release.version,
        release_id=rid,
        techniques=techniques,
        tactics=list_tactics(session, release=release),
        other_domains=others,
        by_stix={o.stix_id: o.attack_id for o in rows if o.attack_id},
    )


VOCABULARY: CacheSpec[Vocabulary] = CacheSpec("attack.vocabulary")


def vocabulary(session: Session, *, release: Release) -> Vocabulary:
    """The release's tactics, platforms and threat names: the one resolver of filter values."""
    return cached(
        session, VOCABULARY, release_key(release), lambda: _build_vocabulary(session, release)
    )


def _build_vocabulary(session: Session, release: Release) -> Vocabulary:
    index = technique_index(session, release=release)
    live = [t for t in index.techniques.values() if t.status == "active"]
    rows = session.exec(
        select(AttackObject).where(
            AttackObject.release_id == release.id,
            col(AttackObject.kind).in_(THREAT_KINDS),
            col(AttackObject.revoked).is_(False),
            col(AttackObject.deprecated).is_(False),
        )
    ).all()
    return Vocabulary(
        release=f"{release.domain} {release.version}",
        tactics=index.tactics,
        platforms=sorted({p for t in live for p in t.platforms}, key=str.lower),
        threat=threat_names(
            [(o.attack_id, o.kind, o.name, _aliases(o.data)) for o in rows if o.attack_id]
        ),
    )


def _aliases(data: dict[str, Any]) -> list[str]:
    """Groups and campaigns keep `aliases`, software `x_mitre_aliases`; both list the name too."""
    return [str(a) for a in (data.get("aliases") or []) + (data.get("x_mitre_aliases") or [])]


def analytics_by_technique(session: Session, *, release: Release) -> AnalyticsByTechnique:
    """Technique id → its analytics (18+): (analytic id, [(log source name, channel)])."""
    return cached(
        session, ANALYTICS, release_key(release), lambda: _build_analytics(session, release)
    )


def _build_analytics(session: Session, release: Release) -> AnalyticsByTechnique:
    rid = release.id or 0
    objs = {
        o.stix_id: o
        for o in session.exec(
            select(AttackObject).where(
                AttackObject.release_id == rid,
                col(AttackObject.kind).in_(("technique", "detection_strategy", "analytic")),
            )
        ).all()
    }
    out: AnalyticsByTechnique = {}
    for r in relationships(session, release_id=rid, types=("detects",), include_deprecated=True):
        strategy, tech = objs.get(r.source_ref), objs.get(r.target_ref)
        if strategy is None or tech is None or strategy.kind != "detection_strategy":
            continue
        for ref in strategy.data.get("analytic_refs") or ():
            a = objs.get(ref)
            if a is None or not a.attack_id:
                continue
            refs = [
                (str(x.get("name", "")), str(x.get("channel", "")))
                for x in a.data.get("log_source_references") or ()
            ]
            out.setdefault(tech.attack_id or "", []).append((a.attack_id, refs))
    return out


def mitigations_for(
    session: Session, *, release: Release, technique_ids: Iterable[str]
) -> dict[str, list[Ref]]:
    """Technique id → the active mitigations that mitigate it, in one query (for gap lists)."""
    ids = list(set(technique_ids))
    if not ids:
        return {}
    rows = mitigation_links(session, release_id=release.id or 0, technique_ids=ids)
    out: dict[str, list[Ref]] = {}
    for tid, mid, name in sorted(rows, key=lambda r: (r[0] or "", r[1] or "")):
        out.setdefault(tid or "", []).append(Ref(id=mid, name=name))
    return out
