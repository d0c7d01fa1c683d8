"""ATT&CK queries: releases, the technique page, other objects through one relationship helper,
and the release diff (`release_view`, `diff_releases`, kept in `views.py` and re-exported here).

Everything here speaks ATT&CK (technique, mitigation, group); STIX ids are only join keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Text, bindparam, cast, func, or_, union_all
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.attack.diff import ReleaseView as ReleaseView
from app.attack.models import (
    AnalyticRead,
    DataComponentLink,
    DetectionStrategyRead,
    LogSource,
    ObjectAttributes,
    ObjectRead,
    ObjectSummary,
    Ref,
    RelatedRef,
    ReleaseRead,
    TacticRead,
    TechniquePage,
    TechniqueRead,
)
from app.attack.stix import DOMAINS, domain_of
from app.attack.tables import AttackObject, Relationship, Release, TechniqueDataComponent
from app.attack.views import diff_releases as diff_releases
from app.attack.views import release_view as release_view
from app.attack.vocabulary import THREAT_KINDS, Vocabulary, threat_names
from app.core.cache import BoundedCache
from app.core.errors import InvalidInput, NotFound
from app.core.pages import Page

# kind → the URL path segment users name it by, for messages
KIND_LABEL = {
    "technique": "technique",
    "mitigation": "mitigation",
    "group": "group",
    "software": "software",
    "campaign": "campaign",
    "data_source": "data source",
    "data_component": "data component",
    "detection_strategy": "detection strategy",
    "analytic": "analytic",
    "tactic": "tactic",
    "asset": "asset",
}


# ---- releases ----------------------------------------------------------------------------------


def list_releases(session: Session) -> list[ReleaseRead]:
    releases = session.exec(
        select(Release).order_by(col(Release.domain), col(Release.version_key))
    ).all()
    newest = {r.domain: r.id for r in releases}  # ordered ascending: last one wins
    return [ReleaseRead(**r.model_dump(), is_default=newest[r.domain] == r.id) for r in releases]


def find_release(session: Session, *, domain: str, version: str | None = None) -> Release | None:
    stmt = select(Release).where(Release.domain == domain)
    if version:
        stmt = stmt.where(Release.version == version)
    return session.exec(stmt.order_by(col(Release.version_key).desc())).first()


def get_release(
    session: Session, *, domain: str | None = None, version: str | None = None
) -> Release:
    """The named release, or the newest of the domain (enterprise unless said)."""
    d = domain_of(domain) if domain else "enterprise"
    release = find_release(session, domain=d, version=version)
    if release is None:
        what = f"{d} {version}" if version else f"any {d} release"
        raise NotFound(f"no ATT&CK release loaded for {what}")
    return release


def releases_for_lookup(
    session: Session, *, domain: str | None, version: str | None
) -> list[Release]:
    """Where to look for an id when the caller did not name a domain: each domain's default."""
    if domain:
        return [get_release(session, domain=domain, version=version)]
    stmt = select(Release).order_by(col(Release.version_key).desc())  # a handful of rows
    if version:
        stmt = stmt.where(Release.version == version)
    newest: dict[str, Release] = {}
    for r in session.exec(stmt).all():
        newest.setdefault(r.domain, r)
    found = [newest[d] for d in DOMAINS if d in newest]  # one query on every lookup, not three
    if not found:
        raise NotFound(f"no ATT&CK release loaded{f' for version {version}' if version else ''}")
    return found


# ---- the one relationship helper -----------------------------------------------------------


@dataclass(frozen=True)
class Related:
    relationship: Relationship
    obj: AttackObject


def related(
    session: Session,
    *,
    release_id: int,
    refs: Iterable[str],
    relationship_type: str,
    direction: str,
    kinds: Sequence[str] | None = None,
) -> list[Related]:
    """Objects linked to `refs` by one relationship type: 'out' = refs are sources, 'in' = targets.

    Revoked relationships are skipped; so are revoked or deprecated objects on the far side.
    """
    ids = list(refs)
    if not ids:
        return []
    near, far = (
        (Relationship.source_ref, Relationship.target_ref)
        if direction == "out"
        else (Relationship.target_ref, Relationship.source_ref)
    )
    stmt = (
        select(Relationship, AttackObject)
        .join(
            AttackObject,
            (col(AttackObject.release_id) == col(Relationship.release_id))
            & (col(AttackObject.stix_id) == far),
        )
        .where(
            Relationship.release_id == release_id,
            col(near).in_(ids),
            Relationship.relationship_type == relationship_type,
            col(Relationship.revoked).is_(False),
            col(AttackObject.revoked).is_(False),
            col(AttackObject.deprecated).is_(False),
        )
    )
    if kinds:
        stmt = stmt.where(col(AttackObject.kind).in_(kinds))
    return [Related(r, o) for r, o in session.exec(stmt).all()]


class ObjectRow(NamedTuple):
    """The columns of an object that pages show, as a plain row, its STIX extras decoded only
    when read: ORM instances and decoding every `data` (an 18+ data component's runs to 32 kB)
    were half of a technique page's render time."""

    stix_id: str
    kind: str
    attack_id: str | None
    name: str
    description: str
    url: str | None
    revoked: bool
    deprecated: bool
    platforms: list[str]
    data_json: str

    @property
    def data(self) -> dict[str, Any]:
        return orjson.loads(self.data_json)  # type: ignore[no-any-return]


def objects_by_stix_id(
    session: Session, *, release_id: int, stix_ids: Iterable[str]
) -> dict[str, ObjectRow]:
    ids = list(set(stix_ids))
    if not ids:
        return {}
    rows = session.connection().execute(_OBJECTS_BY_STIX_ID, {"rid": release_id, "ids": ids})
    return {r[0]: ObjectRow(*r) for r in rows}


# The page's statements are built once with bound parameters: building a SQLAlchemy statement
# costs more than SQLite takes to answer it (measured: ~40% of a page's render time).
_OBJECT_COLUMNS = (
    *(col(getattr(AttackObject, f)) for f in ObjectRow._fields[:-1]),
    cast(col(AttackObject.data), Text),  # raw: see ObjectRow
)
_OBJECTS_BY_STIX_ID = sa_select(*_OBJECT_COLUMNS).where(
    col(AttackObject.release_id) == bindparam("rid"),
    col(AttackObject.stix_id).in_(bindparam("ids", expanding=True)),
)
_FIND_OBJECT = sa_select(*_OBJECT_COLUMNS).where(
    col(AttackObject.release_id) == bindparam("rid"),
    col(AttackObject.kind) == bindparam("kind"),
    col(AttackObject.attack_id) == bindparam("aid"),
)
# The columns of a `Brief`, in its order (coverage reads the same light rows)
BRIEF_COLUMNS = (
    col(AttackObject.stix_id),
    col(AttackObject.kind),
    col(AttackObject.attack_id),
    col(AttackObject.name),
    col(AttackObject.revoked),
    col(AttackObject.deprecated),
)
_BRIEFS = sa_select(*BRIEF_COLUMNS).where(
    col(AttackObject.release_id) == bindparam("rid"),
    col(AttackObject.stix_id).in_(bindparam("ids", expanding=True)),
)
_REL_COLUMNS = (
    col(Relationship.relationship_type),
    col(Relationship.source_ref),
    col(Relationship.target_ref),
    col(Relationship.description),
)
_LIVE_REL = (col(Relationship.release_id) == bindparam("rid"), col(Relationship.revoked).is_(False))


def _relationships_from(near: Any, far: Any) -> Any:
    """Live relationships whose `near` end is :sid, each with the brief of its `far` end."""
    on_far = (col(AttackObject.release_id) == col(Relationship.release_id)) & (
        col(AttackObject.stix_id) == far
    )
    return (
        sa_select(*_REL_COLUMNS, *BRIEF_COLUMNS)
        .join_from(Relationship, AttackObject, on_far)
        .where(*_LIVE_REL, near == bindparam("sid"))
    )


# Two index lookups (a UNION), not one OR that SQLite would answer with a scan; the far ends'
# briefs come in the same statement (a second one, with hundreds of ids for a technique that many
# groups use, was a quarter of a page's render)
_RELATIONSHIPS_OF = union_all(
    _relationships_from(col(Relationship.source_ref), col(Relationship.target_ref)),
    _relationships_from(col(Relationship.target_ref), col(Relationship.source_ref)),
)
_ATTRIBUTED_TO = sa_select(col(Relationship.target_ref)).where(
    *_LIVE_REL,
    col(Relationship.relationship_type) == "attributed-to",
    col(Relationship.source_ref).in_(bindparam("ids", expanding=True)),
)
_DATA_COMPONENT_LINKS = sa_select(
    col(TechniqueDataComponent.data_component_ref), col(TechniqueDataComponent.analytic_ref)
).where(
    col(TechniqueDataComponent.release_id) == bindparam("rid"),
    col(TechniqueDataComponent.technique_ref) == bindparam("sid"),
)


# ---- techniques ----------------------------------------------------------------------------


def find_object(
    session: Session, *, release_id: int, kind: str, attack_id: str
) -> ObjectRow | None:
    params = {"rid": release_id, "kind": kind, "aid": attack_id.strip().upper()}
    row = session.connection().execute(_FIND_OBJECT, params).first()
    return ObjectRow(*row) if row else None


def get_object(
    session: Session, *, releases: Sequence[Release], kind: str, attack_id: str
) -> tuple[Release, ObjectRow]:
    """Find an id in the first release that has it; NotFound names what was searched."""
    for release in releases:
        obj = find_object(session, release_id=release.id or 0, kind=kind, attack_id=attack_id)
        if obj is not None:
            return release, obj
    where = ", ".join(f"{r.domain} {r.version}" for r in releases)
    raise NotFound(f"{KIND_LABEL.get(kind, kind)} {attack_id} is not in ATT&CK {where}")


class Brief(NamedTuple):
    """The few columns a page shows of a related object (no JSON decoding)."""

    stix_id: str
    kind: str
    attack_id: str | None
    name: str
    revoked: bool
    deprecated: bool

    @property
    def live(self) -> bool:
        return not self.revoked and not self.deprecated


def _briefs(session: Session, *, release_id: int, refs: Iterable[str]) -> dict[str, Brief]:
    ids = list(set(refs))
    if not ids:
        return {}
    rows = session.connection().execute(_BRIEFS, {"rid": release_id, "ids": ids}).all()
    return {r[0]: Brief(*r) for r in rows}


def _ref(o: Brief | ObjectRow) -> Ref:
    return Ref(id=o.attack_id, name=o.name)


def _sorted_briefs(objs: Iterable[Brief]) -> list[Ref]:
    unique = {o.stix_id: o for o in objs}
    return sorted((_ref(o) for o in unique.values()), key=lambda r: (r.id or "", r.name))


# A loaded release never changes, so each technique's page is built once per release and shared
# (about three quarters of a page's cost; the rules, which change with every import, are added by
# the catalog service to a copy). Keyed by the database too: tests open several in one process.
_technique_pages: BoundedCache[TechniquePage] = BoundedCache(1024)


def get_technique_page(
    session: Session, *, releases: Sequence[Release], attack_id: str
) -> TechniquePage:
    """The seed page for one technique, without rules. Shared between callers: copy it with
    `model_copy(update=...)`, never change it."""
    key = (
        str(session.get_bind().engine.url),
        tuple(release_key(r) for r in releases),
        attack_id.strip().upper(),
    )
    return _technique_pages.get_or_make(
        key, lambda: _build_technique_page(session, releases=releases, attack_id=attack_id)
    )


def _build_technique_page(
    session: Session, *, releases: Sequence[Release], attack_id: str
) -> TechniquePage:
    """Hot path: light column queries, ~6 round trips, statements built once."""
    release, tech = get_object(session, releases=releases, kind="technique", attack_id=attack_id)
    rid = release.id or 0
    sid = tech.stix_id
    rels = session.connection().execute(_RELATIONSHIPS_OF, {"rid": rid, "sid": sid}).all()
    parent = revoked_by = None
    by_type: dict[str, list[tuple[str, Brief]]] = {}
    for rtype, src, _dst, desc, *far in rels:
        o = Brief(*far)
        if src == sid:
            if rtype == "subtechnique-of":
                parent = o
            elif rtype == "revoked-by":
                revoked_by = o
        elif o.live:
            by_type.setdefault(rtype, []).append((desc, o))

    uses = [o for _, o in by_type.get("uses", [])]
    campaigns = [o for o in uses if o.kind == "campaign"]
    groups = [o for o in uses if o.kind == "group"]
    if campaigns:
        attributed = (
            session.connection()
            .execute(_ATTRIBUTED_TO, {"rid": rid, "ids": [c.stix_id for c in campaigns]})
            .scalars()
            .all()
        )
        groups += [
            b
            for b in _briefs(session, release_id=rid, refs=attributed).values()
            if b.kind == "group" and b.live
        ]
    mitigations = sorted(
        (
            RelatedRef(id=o.attack_id, name=o.name, description=desc)
            for desc, o in by_type.get("mitigates", [])
            if o.kind == "mitigation"
        ),
        key=lambda m: m.id or "",
    )
    strategies, components = _detection(
        session, release_id=rid, technique=tech, detects=by_type.get("detects", [])
    )
    data = tech.data
    return TechniquePage(
        id=tech.attack_id or "",
        name=tech.name,
        description=tech.description,
        url=tech.url,
        domain=release.domain,
        version=release.version,
        revoked=tech.revoked,
        deprecated=tech.deprecated,
        revoked_by=_ref(revoked_by) if revoked_by else None,
        tactics=[p["phase_name"] for p in data.get("kill_chain_phases") or ()],
        platforms=tech.platforms,
        is_subtechnique=bool(data.get("is_subtechnique")),
        parent=_ref(parent) if parent else None,
        subtechniques=_sorted_briefs(o for _, o in by_type.get("subtechnique-of", [])),
        detection=data.get("detection") or "",
        data_sources=list(data.get("data_sources") or ()),
        mitigations=mitigations,
        data_components=components,
        detection_strategies=strategies,
        groups=_sorted_briefs(groups),
        software=_sorted_briefs(o for o in uses if o.kind == "software"),
        campaigns=_sorted_briefs(campaigns),
    )


def _detection(
    session: Session,
    *,
    release_id: int,
    technique: ObjectRow,
    detects: list[tuple[str, Brief]],
) -> tuple[list[DetectionStrategyRead], list[DataComponentLink]]:
    """Both detection models; the derived data components come from the ingest-time links."""
    links = (
        session.connection()
        .execute(_DATA_COMPONENT_LINKS, {"rid": release_id, "sid": technique.stix_id})
        .all()
    )
    strategy_refs = [o.stix_id for _, o in detects if o.kind == "detection_strategy"]
    dc_refs = {dc for dc, _a in links}
    detail = objects_by_stix_id(
        session,
        release_id=release_id,
        stix_ids=[*strategy_refs, *dc_refs, *(a for _dc, a in links if a)],
    )
    analytics_of = {
        r: detail[r].data.get("analytic_refs") or () for r in strategy_refs if r in detail
    }
    missing = [a for refs in analytics_of.values() for a in refs if a not in detail]
    if missing:  # analytics that name no data component have no link row
        detail.update(objects_by_stix_id(session, release_id=release_id, stix_ids=missing))
    source_of: dict[str, str] = {}  # data component → its data source, ≤ 17 only
    if not strategy_refs:  # ≤ 17: data components belong to data sources
        source_of = {d: detail[d].data.get("data_source_ref") or "" for d in dc_refs if d in detail}
    sources = objects_by_stix_id(session, release_id=release_id, stix_ids=source_of.values())
    text_of = {o.stix_id: desc for desc, o in detects if o.kind == "data_component"}
    comp_links: list[DataComponentLink] = []
    for ref in sorted(dc_refs, key=lambda x: detail[x].name if x in detail else x):
        c = detail.get(ref)
        if c is None:
            continue
        ds = sources.get(source_of.get(ref, ""))
        comp_links.append(
            DataComponentLink(
                id=c.attack_id,
                name=c.name,
                data_source=_ref(ds) if ds else None,
                description=text_of.get(ref, c.description),
            )
        )
    reads = []
    for s in sorted((detail[r] for r in analytics_of), key=lambda s: s.attack_id or ""):
        items = []
        for aref in analytics_of[s.stix_id]:
            a = detail.get(aref)
            if a is None:
                continue
            extra = a.data
            items.append(
                AnalyticRead(
                    id=a.attack_id,
                    name=a.name,
                    platforms=a.platforms,
                    description=a.description,
                    log_sources=[
                        LogSource(
                            data_component=_ref(detail[dc])
                            if (dc := ls.get("x_mitre_data_component_ref", "")) in detail
                            else None,
                            name=ls.get("name", ""),
                            channel=ls.get("channel", ""),
                        )
                        for ls in extra.get("log_source_references") or ()
                    ],
                    mutable_elements=list(extra.get("mutable_elements") or ()),
                )
            )
        reads.append(DetectionStrategyRead(id=s.attack_id, name=s.name, analytics=items))
    return reads, comp_links


def list_techniques(
    session: Session,
    *,
    release: Release,
    tactic: str | None = None,
    platform: str | None = None,
    q: str | None = None,
    include_revoked: bool = False,
    include_deprecated: bool = False,
    subtechniques: str = "include",
    limit: int = 100,
    offset: int = 0,
) -> Page[TechniqueRead]:
    words = vocabulary(session, release=release)
    tactics = words.tactic_shortnames([tactic] if tactic else [])
    platforms = words.platform_names([platform] if platform else [])
    stmt = select(AttackObject).where(
        AttackObject.release_id == release.id, AttackObject.kind == "technique"
    )
    if not include_revoked:
        stmt = stmt.where(col(AttackObject.revoked).is_(False))
    if not include_deprecated:
        stmt = stmt.where(col(AttackObject.deprecated).is_(False))
    if q:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(
            or_(
                func.lower(AttackObject.attack_id).like(pattern),
                func.lower(AttackObject.name).like(pattern),
                func.lower(AttackObject.description).like(pattern),
            )
        )
    rows = session.exec(stmt.order_by(AttackObject.attack_id)).all()
    items = [_technique_read(o) for o in rows]
    if subtechniques not in ("include", "exclude", "only"):
        raise InvalidInput("subtechniques must be include, exclude or only")
    if subtechniques != "include":
        want = subtechniques == "only"
        items = [t for t in items if t.is_subtechnique == want]
    if tactics:
        items = [t for t in items if tactics[0] in t.tactics]
    if platforms:
        items = [t for t in items if platforms[0].lower() in {x.lower() for x in t.platforms}]
    return Page(items=items[offset : offset + limit], total=len(items), limit=limit, offset=offset)


def _technique_read(o: AttackObject) -> TechniqueRead:
    return TechniqueRead(
        id=o.attack_id or "",
        name=o.name,
        tactics=[p["phase_name"] for p in o.data.get("kill_chain_phases") or ()],
        platforms=o.platforms,
        is_subtechnique=bool(o.data.get("is_subtechnique")),
        revoked=o.revoked,
        deprecated=o.deprecated,
        url=o.url,
    )


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


# ---- other objects -------------------------------------------------------------------------

# For each kind: (relationship type, direction, label of the related list)
_RELATED: dict[str, list[tuple[str, str, str]]] = {
    "mitigation": [("mitigates", "out", "techniques")],
    "group": [("uses", "out", "uses"), ("attributed-to", "in", "campaigns")],
    "software": [("uses", "out", "uses"), ("uses", "in", "used_by")],
    "campaign": [("uses", "out", "uses"), ("attributed-to", "out", "groups")],
    "detection_strategy": [("detects", "out", "techniques")],
    "data_component": [("detects", "out", "techniques")],
    "data_source": [],
    "analytic": [],
    "tactic": [],
    "asset": [("targets", "in", "targeted_by")],
}


def get_object_read(
    session: Session, *, releases: Sequence[Release], kind: str, attack_id: str
) -> ObjectRead:
    release, obj = get_object(session, releases=releases, kind=kind, attack_id=attack_id)
    return object_read(session, release=release, obj=obj)


def object_read(session: Session, *, release: Release, obj: ObjectRow) -> ObjectRead:
    rid = release.id or 0
    groups: dict[str, list[RelatedRef]] = {}
    for rtype, direction, label in _RELATED.get(obj.kind, []):
        for x in related(
            session,
            release_id=rid,
            refs=[obj.stix_id],
            relationship_type=rtype,
            direction=direction,
        ):
            name = label if label not in ("uses", "used_by") else f"{label}_{x.obj.kind}"
            groups.setdefault(_plural(name), []).append(
                RelatedRef(
                    id=x.obj.attack_id, name=x.obj.name, description=x.relationship.description
                )
            )
    if obj.kind in _VIA_CAMPAIGN:
        _add_via_campaigns(session, release=release, related_refs=groups, kind=obj.kind)
    if obj.kind in ("detection_strategy", "data_source"):
        groups.update(_children(session, release_id=rid, obj=obj))
    for items in groups.values():
        items.sort(key=lambda r: (r.id or "", r.name))
    attrs = {k: v for k, v in obj.data.items() if not k.endswith("_refs") and k != "type"}
    return ObjectRead(
        id=obj.attack_id,
        kind=obj.kind,
        name=obj.name,
        description=obj.description,
        url=obj.url,
        revoked=obj.revoked,
        deprecated=obj.deprecated,
        platforms=obj.platforms,
        attributes=ObjectAttributes.model_validate(attrs),
        related=groups,
    )


# What an object reaches through its campaigns: a group the techniques and software its
# attributed campaigns use; software the groups its campaigns are attributed to.
_VIA_CAMPAIGN: dict[str, str] = {"group": "uses", "software": "attributed-to"}


def _add_via_campaigns(
    session: Session, *, release: Release, related_refs: dict[str, list[RelatedRef]], kind: str
) -> None:
    """Add what the object's campaigns link to, marked "via campaign Cxxxx", unless listed."""
    for cid in [c.id for c in related_refs.get("campaigns", [])]:
        _, camp = get_object(session, releases=[release], kind="campaign", attack_id=cid or "")
        for x in related(
            session,
            release_id=release.id or 0,
            refs=[camp.stix_id],
            relationship_type=_VIA_CAMPAIGN[kind],
            direction="out",
        ):
            key = _plural(f"uses_{x.obj.kind}") if kind == "group" else "groups"
            if not any(r.id == x.obj.attack_id for r in related_refs.get(key, [])):
                related_refs.setdefault(key, []).append(
                    RelatedRef(
                        id=x.obj.attack_id, name=x.obj.name, description=f"via campaign {cid}"
                    )
                )


def _plural(label: str) -> str:
    return {
        "uses_technique": "techniques",
        "uses_software": "software",
        "used_by_group": "groups",
        "used_by_campaign": "campaigns",
    }.get(label, label)


def _children(session: Session, *, release_id: int, obj: ObjectRow) -> dict[str, list[RelatedRef]]:
    if obj.kind == "detection_strategy":
        analytics = objects_by_stix_id(
            session, release_id=release_id, stix_ids=obj.data.get("analytic_refs") or ()
        )
        return {"analytics": [RelatedRef(id=a.attack_id, name=a.name) for a in analytics.values()]}
    comps = session.exec(
        select(AttackObject).where(
            AttackObject.release_id == release_id, AttackObject.kind == "data_component"
        )
    ).all()
    return {
        "data_components": [
            RelatedRef(id=c.attack_id, name=c.name)
            for c in comps
            if c.data.get("data_source_ref") == obj.stix_id
        ]
    }


def list_objects(
    session: Session,
    *,
    release: Release,
    kind: str,
    q: str | None = None,
    include_revoked: bool = False,
    include_deprecated: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> Page[ObjectSummary]:
    stmt = select(AttackObject).where(
        AttackObject.release_id == release.id, AttackObject.kind == kind
    )
    if not include_revoked:
        stmt = stmt.where(col(AttackObject.revoked).is_(False))
    if not include_deprecated:
        stmt = stmt.where(col(AttackObject.deprecated).is_(False))
    if q:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(
            or_(
                func.lower(AttackObject.attack_id).like(pattern),
                func.lower(AttackObject.name).like(pattern),
            )
        )
    rows = session.exec(stmt.order_by(AttackObject.attack_id, AttackObject.name)).all()
    items = [
        ObjectSummary(
            id=o.attack_id,
            name=o.name,
            description=o.description,
            url=o.url,
            platforms=o.platforms,
            revoked=o.revoked,
            deprecated=o.deprecated,
        )
        for o in rows[offset : offset + limit]
    ]
    return Page(items=items, total=len(rows), limit=limit, offset=offset)


# ---- an index of one release, for validating and scoring many mappings at once --------------


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


_index_cache: BoundedCache[TechniqueIndex] = BoundedCache()
_analytics_cache: BoundedCache[dict[str, list[tuple[str, list[tuple[str, str]]]]]] = BoundedCache()


def release_key(release: Release) -> tuple[int, str]:
    """Cache key of a release's derived data: a re-ingest gets a new id and load time."""
    return (release.id or 0, str(release.loaded_at))


def technique_index(session: Session, *, release: Release) -> TechniqueIndex:
    """Every technique of a release with its state; built once per loaded release."""
    return _index_cache.get_or_make(
        release_key(release), lambda: _build_technique_index(session, release)
    )


def _build_technique_index(session: Session, release: Release) -> TechniqueIndex:
    rid = release.id or 0
    rows = session.exec(
        select(AttackObject).where(AttackObject.release_id == rid, AttackObject.kind == "technique")
    ).all()
    by_stix = {o.stix_id: o for o in rows}
    revoked_by: dict[str, str] = {}
    for r in session.exec(
        select(Relationship).where(
            Relationship.release_id == rid, Relationship.relationship_type == "revoked-by"
        )
    ).all():
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
    )


_vocabulary_cache: BoundedCache[Vocabulary] = BoundedCache()


def vocabulary(session: Session, *, release: Release) -> Vocabulary:
    """The release's tactics, platforms and threat names: the one resolver of filter values."""
    return _vocabulary_cache.get_or_make(
        release_key(release), lambda: _build_vocabulary(session, release)
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


def analytics_by_technique(
    session: Session, *, release: Release
) -> dict[str, list[tuple[str, list[tuple[str, str]]]]]:
    """Technique id → its analytics (18+): (analytic id, [(log source name, channel)])."""
    return _analytics_cache.get_or_make(
        release_key(release), lambda: _build_analytics(session, release)
    )


def _build_analytics(
    session: Session, release: Release
) -> dict[str, list[tuple[str, list[tuple[str, str]]]]]:
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
    out: dict[str, list[tuple[str, list[tuple[str, str]]]]] = {}
    for r in session.exec(
        select(Relationship).where(
            Relationship.release_id == rid,
            Relationship.relationship_type == "detects",
            col(Relationship.revoked).is_(False),
        )
    ).all():
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
    mit, tech = aliased(AttackObject), aliased(AttackObject)
    rid = release.id or 0
    rows = session.execute(
        sa_select(col(tech.attack_id), col(mit.attack_id), col(mit.name))
        .select_from(Relationship)
        .join(
            mit, (col(mit.release_id) == rid) & (col(mit.stix_id) == col(Relationship.source_ref))
        )
        .join(
            tech,
            (col(tech.release_id) == rid) & (col(tech.stix_id) == col(Relationship.target_ref)),
        )
        .where(
            col(Relationship.release_id) == rid,
            col(Relationship.relationship_type) == "mitigates",
            col(Relationship.revoked).is_(False),
            col(mit.revoked).is_(False),
            col(mit.deprecated).is_(False),
            col(tech.kind) == "technique",
            col(tech.attack_id).in_(ids),
        )
    ).all()
    out: dict[str, list[Ref]] = {}
    for tid, mid, name in sorted(rows, key=lambda r: (r[0] or "", r[1] or "")):
        out.setdefault(tid or "", []).append(Ref(id=mid, name=name))
    return out
