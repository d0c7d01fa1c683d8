"""ATT&CK objects one at a time or as lists: find by id, read with what they link to, filter.

Everything here speaks ATT&CK (technique, mitigation, group); STIX ids are only join keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.attack.index import vocabulary
from app.attack.models import (
    ObjectAttributes,
    ObjectRead,
    ObjectSummary,
    RelatedRef,
    TechniqueRead,
)
from app.attack.relationships import related
from app.attack.rows import BRIEF_COLUMNS, OBJECT_COLUMNS, Brief, ObjectRow
from app.attack.tables import AttackObject, Release, TechniqueDataComponent
from app.core.db import contains_text
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


# The page's statements are built once with bound parameters: building a SQLAlchemy statement
# costs more than SQLite takes to answer it (measured: ~40% of a page's render time).
_OBJECTS_BY_STIX_ID = sa_select(*OBJECT_COLUMNS).where(
    col(AttackObject.release_id) == bindparam("rid"),
    col(AttackObject.stix_id).in_(bindparam("ids", expanding=True)),
)
_FIND_OBJECT = sa_select(*OBJECT_COLUMNS).where(
    col(AttackObject.release_id) == bindparam("rid"),
    col(AttackObject.kind) == bindparam("kind"),
    col(AttackObject.attack_id) == bindparam("aid"),
)
_BRIEFS = sa_select(*BRIEF_COLUMNS).where(
    col(AttackObject.release_id) == bindparam("rid"),
    col(AttackObject.stix_id).in_(bindparam("ids", expanding=True)),
)
_DATA_COMPONENT_LINKS = sa_select(
    col(TechniqueDataComponent.data_component_ref), col(TechniqueDataComponent.analytic_ref)
).where(
    col(TechniqueDataComponent.release_id) == bindparam("rid"),
    col(TechniqueDataComponent.technique_ref) == bindparam("sid"),
)


def objects_by_stix_id(
    session: Session, *, release_id: int, stix_ids: Iterable[str]
) -> dict[str, ObjectRow]:
    ids = list(set(stix_ids))
    if not ids:
        return {}
    rows = session.connection().execute(_OBJECTS_BY_STIX_ID, {"rid": release_id, "ids": ids})
    return {r[0]: ObjectRow(*r) for r in rows}


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


def briefs(session: Session, *, release_id: int, refs: Iterable[str]) -> dict[str, Brief]:
    """The light rows of objects by STIX id (missing ones left out)."""
    ids = list(set(refs))
    if not ids:
        return {}
    rows = session.connection().execute(_BRIEFS, {"rid": release_id, "ids": ids}).all()
    return {r[0]: Brief(*r) for r in rows}


def technique_data_components(
    session: Session, *, release_id: int, technique_ref: str
) -> list[tuple[str, str | None]]:
    """(data component, analytic or None) STIX ids of one technique's ingest-time links."""
    params = {"rid": release_id, "sid": technique_ref}
    return [(dc, a) for dc, a in session.connection().execute(_DATA_COMPONENT_LINKS, params)]


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
    rows = _matching(
        session,
        release=release,
        kind="technique",
        q=q,
        include_revoked=include_revoked,
        include_deprecated=include_deprecated,
        search=_TECHNIQUE_SEARCH,
    )
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


# What `q` searches (case-insensitive substring): techniques by their description too
_OBJECT_SEARCH = (col(AttackObject.attack_id), col(AttackObject.name))
_TECHNIQUE_SEARCH = (*_OBJECT_SEARCH, col(AttackObject.description))


def _matching(
    session: Session,
    *,
    release: Release,
    kind: str,
    q: str | None,
    include_revoked: bool,
    include_deprecated: bool,
    search: Sequence[Any],
) -> Sequence[AttackObject]:
    """The objects of one kind that both list endpoints' filters keep, in ATT&CK id order."""
    stmt = select(AttackObject).where(
        AttackObject.release_id == release.id, AttackObject.kind == kind
    )
    if not include_revoked:
        stmt = stmt.where(col(AttackObject.revoked).is_(False))
    if not include_deprecated:
        stmt = stmt.where(col(AttackObject.deprecated).is_(False))
    if q:
        stmt = stmt.where(or_(*(contains_text(c, q) for c in search)))
    return session.exec(stmt.order_by(AttackObject.attack_id, AttackObject.name)).all()


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
    rows = _matching(
        session,
        release=release,
        kind=kind,
        q=q,
        include_revoked=include_revoked,
        include_deprecated=include_deprecated,
        search=_OBJECT_SEARCH,
    )
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
