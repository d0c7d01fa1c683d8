"""What coverage knows of a release and of a catalog, read once and cached under explicit keys.

A release's facts (techniques, threat users, data components, detection strategies) are keyed by
`attack_service.release_key`; a catalog's counted mappings by its catalog key plus the weight set.
So a summary over 700 techniques and 100k rules is in-memory work after the first call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.service import TechniqueIndex
from app.catalog import service as catalog_service
from app.core.cache import CacheSpec, cached
from app.core.config import CoverageWeights
from app.coverage.scoring import rule_weight

if TYPE_CHECKING:  # row types for annotations only: the reads go through the services
    from app.attack.release_rows import TechniqueComponentRow
    from app.attack.service import RelationshipLink
    from app.attack.tables import Release
    from app.catalog.mappings import CountedMapping
    from app.catalog.tables import Catalog

# the kinds whose live objects the facts join relationships and links against
_FACT_KINDS = (
    "technique",
    "group",
    "software",
    "campaign",
    "data_component",
    "detection_strategy",
)
_THREAT_KINDS = ("group", "software", "campaign")
_Live = Mapping[str, tuple[str, str | None, str]]  # STIX id → (kind, ATT&CK id, name)


@dataclass
class ReleaseFacts:
    """What coverage needs of one release, computed once per loaded release."""

    index: TechniqueIndex
    users: dict[str, dict[str, set[str]]]  # technique → kind (group/software/campaign) → ids
    user_names: dict[str, str]  # group/software/campaign id → name
    data_components: dict[str, set[str]]  # technique → data component names
    component_ids: dict[str, str | None]  # data component name → id
    strategies: dict[str, list[tuple[str | None, str]]]  # technique → (id, name)
    analytics: dict[str, set[str]]  # technique → analytic ids
    technique_users: dict[str, set[str]] = field(default_factory=dict)  # user id → techniques


@dataclass
class TechniqueRules:
    """One catalog's rules on one technique: rule pk → weight, unpinned and per pinned tactic."""

    unpinned: dict[int, float] = field(default_factory=dict)
    pinned: dict[str, dict[int, float]] = field(default_factory=dict)
    remapped: set[int] = field(default_factory=set)

    def all_rules(self) -> dict[int, float]:
        out = dict(self.unpinned)
        for rules in self.pinned.values():
            for pk, w in rules.items():
                out[pk] = max(out.get(pk, 0.0), w)
        return out


@dataclass
class CatalogWeights:
    """A catalog's counted mappings, aggregated per technique once per import and weight set."""

    techniques: dict[str, TechniqueRules]
    mapped_rules: int
    covered: set[str]  # techniques with at least one rule of weight > 0


RELEASE_FACTS: CacheSpec[ReleaseFacts] = CacheSpec("coverage.release_facts")
CATALOG_WEIGHTS: CacheSpec[CatalogWeights] = CacheSpec("coverage.catalog_weights", 64)


def release_facts(session: Session, *, release: Release) -> ReleaseFacts:
    """Threat users, data components and strategies per technique; once per loaded release."""
    return cached(
        session,
        RELEASE_FACTS,
        attack_service.release_key(release),
        lambda: _build_release_facts(session, release),
    )


def _build_release_facts(session: Session, release: Release) -> ReleaseFacts:
    rid = release.id or 0
    objs = attack_service.live_objects(session, release_id=rid, kinds=_FACT_KINDS)
    live: _Live = {s: (k, a, n) for s, k, a, n in objs}
    rels = attack_service.relationships(
        session,
        release_id=rid,
        types=("uses", "attributed-to", "detects"),
        include_deprecated=True,  # coverage has always counted deprecated relationships
    )
    users, names, strategies = _threat_and_strategies(live, rels)
    links = attack_service.data_component_links(session, release_id=rid)
    analytic_ids = attack_service.analytic_ids(session, release_id=rid)
    dcs, component_ids, analytics = _data_components(live, links, analytic_ids)
    return ReleaseFacts(
        index=attack_service.technique_index(session, release=release),
        users=users,
        user_names=names,
        data_components=dcs,
        component_ids=component_ids,
        strategies=strategies,
        analytics=analytics,
        technique_users=_techniques_by_user(users),
    )


def _threat_and_strategies(
    live: _Live, rels: Iterable[RelationshipLink]
) -> tuple[dict[str, dict[str, set[str]]], dict[str, str], dict[str, list[tuple[str | None, str]]]]:
    """Who uses each technique (a campaign's use counts for its attributed groups too), their
    names, and the detection strategies that detect it."""
    rels = list(rels)
    attributed: dict[str, set[str]] = defaultdict(set)
    for rtype, src, dst, _desc in rels:
        if rtype == "attributed-to" and src in live and dst in live:
            attributed[src].add(dst)
    users: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    names: dict[str, str] = {}
    strategies: dict[str, list[tuple[str | None, str]]] = defaultdict(list)
    for rtype, src, dst, _desc in rels:
        if src not in live or dst not in live or live[dst][0] != "technique":
            continue
        tid = live[dst][1] or ""
        kind, aid, name = live[src]
        if rtype == "uses" and kind in _THREAT_KINDS and aid:
            users[tid][kind].add(aid)
            names[aid] = name
            if kind == "campaign":
                for g in attributed.get(src, ()):
                    _k, gid, gname = live[g]
                    if gid:
                        users[tid]["group"].add(gid)
                        names[gid] = gname
        elif rtype == "detects" and kind == "detection_strategy":
            strategies[tid].append((aid, name))
    return users, names, strategies


def _data_components(
    live: _Live,
    links: Iterable[TechniqueComponentRow],
    analytic_ids: Mapping[str, str | None],
) -> tuple[dict[str, set[str]], dict[str, str | None], dict[str, set[str]]]:
    """Data component names per technique, each name's id, and analytic ids per technique."""
    dcs: dict[str, set[str]] = defaultdict(set)
    analytics: dict[str, set[str]] = defaultdict(set)
    component_ids: dict[str, str | None] = {}
    for t_ref, dc_ref, an_ref in links:
        if t_ref in live and dc_ref in live:
            tid = live[t_ref][1] or ""
            _k, dc_id, dc_name = live[dc_ref]
            dcs[tid].add(dc_name)
            component_ids[dc_name] = dc_id
            if an_ref and (an_id := analytic_ids.get(an_ref)):
                analytics[tid].add(an_id)
    return dcs, component_ids, analytics


def _techniques_by_user(users: Mapping[str, Mapping[str, set[str]]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for tid, kinds in users.items():
        for ids in kinds.values():
            for uid in ids:
                out.setdefault(uid, set()).add(tid)
    return out


def catalog_mappings(
    session: Session, *, catalog: Catalog, weights: CoverageWeights
) -> CatalogWeights:
    """A catalog's counted mappings with their rule weights; once per import and weight set."""
    key = (catalog_service.catalog_key(catalog), weights.model_dump_json())
    return cached(session, CATALOG_WEIGHTS, key, lambda: _weigh_mappings(session, catalog, weights))


def _weigh_mappings(session: Session, catalog: Catalog, weights: CoverageWeights) -> CatalogWeights:
    rows = catalog_service.counted_mappings(session, catalog_id=catalog.id or 0)
    return weigh(rows, weights)


def weigh(rows: Iterable[CountedMapping], weights: CoverageWeights) -> CatalogWeights:
    """Pure: per technique, each rule's best weight, unpinned or per pinned tactic."""
    techniques: dict[str, TechniqueRules] = defaultdict(TechniqueRules)
    pks: set[int] = set()
    covered: set[str] = set()
    for t, tac, o, en, st, sev, pk in rows:
        tid, rule = t or "", pk or 0
        w = rule_weight(enabled=en, status=st, level=sev, w=weights)
        agg = techniques[tid]
        bucket = agg.pinned.setdefault(tac, {}) if tac else agg.unpinned
        bucket[rule] = max(bucket.get(rule, 0.0), w)
        if o == "remapped":
            agg.remapped.add(rule)
        if w > 0:
            covered.add(tid)
        pks.add(rule)
    return CatalogWeights(techniques=dict(techniques), mapped_rules=len(pks), covered=covered)
