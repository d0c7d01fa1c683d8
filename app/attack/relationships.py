"""Every read of the relationship table: other modules and domains ask here, never the table.

Statements are built once with bound parameters: building a SQLAlchemy statement costs more than
SQLite takes to answer it (measured: ~40% of a technique page's render time).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple, cast

from sqlalchemy import Select, bindparam, union_all
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from app.attack.rows import BRIEF_COLUMNS, Brief
from app.attack.tables import AttackObject, Relationship


class RelationshipLink(NamedTuple):
    """One STIX relationship, by its ends' STIX ids."""

    relationship_type: str
    source_ref: str
    target_ref: str
    description: str


_LINK_COLUMNS = (
    col(Relationship.relationship_type),
    col(Relationship.source_ref),
    col(Relationship.target_ref),
    col(Relationship.description),
)


def relationships(
    session: Session,
    *,
    release_id: int,
    types: Collection[str],
    sources: Collection[str] | None = None,
    targets: Collection[str] | None = None,
    include_revoked: bool = False,
    include_deprecated: bool = False,
) -> list[RelationshipLink]:
    """Relationships of `types` in a release, optionally only from `sources` / to `targets`.

    Live ones only unless the flags say otherwise (ATT&CK marks a withdrawn link revoked or
    deprecated, keeping it in the bundle). Rows come back as the database gives them, with the
    fields of a `RelationshipLink`: building tuples anew was a third of the call for the tens of
    thousands a release's coverage facts read.
    """
    params: dict[str, Any] = {"rid": release_id, "types": list(types)}
    if sources is not None:
        params["sources"] = list(sources)
    if targets is not None:
        params["targets"] = list(targets)
    stmt = _links_statement(
        sources is not None, targets is not None, include_revoked, include_deprecated
    )
    return cast("list[RelationshipLink]", session.connection().execute(stmt, params).all())


@cache
def _links_statement(by_source: bool, by_target: bool, revoked: bool, deprecated: bool) -> Select:  # type: ignore[type-arg]
    """One prebuilt statement per shape of question (at most sixteen)."""
    stmt = sa_select(*_LINK_COLUMNS).where(
        col(Relationship.release_id) == bindparam("rid"),
        col(Relationship.relationship_type).in_(bindparam("types", expanding=True)),
    )
    if by_source:
        stmt = stmt.where(col(Relationship.source_ref).in_(bindparam("sources", expanding=True)))
    if by_target:
        stmt = stmt.where(col(Relationship.target_ref).in_(bindparam("targets", expanding=True)))
    if not revoked:
        stmt = stmt.where(col(Relationship.revoked).is_(False))
    if not deprecated:
        stmt = stmt.where(col(Relationship.deprecated).is_(False))
    return stmt


@dataclass(frozen=True)
class Related:
    """A relationship with the object at its far end."""

    relationship: RelationshipLink
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
        sa_select(*_LINK_COLUMNS, AttackObject)
        .join(
            AttackObject,
            (col(AttackObject.release_id) == col(Relationship.release_id))
            & (col(AttackObject.stix_id) == far),
        )
        .where(
            col(Relationship.release_id) == release_id,
            col(near).in_(ids),
            col(Relationship.relationship_type) == relationship_type,
            col(Relationship.revoked).is_(False),
            col(AttackObject.revoked).is_(False),
            col(AttackObject.deprecated).is_(False),
        )
    )
    if kinds:
        stmt = stmt.where(col(AttackObject.kind).in_(kinds))
    return [Related(RelationshipLink(*r[:4]), r[4]) for r in session.execute(stmt).all()]


_LIVE_REL = (col(Relationship.release_id) == bindparam("rid"), col(Relationship.revoked).is_(False))


def _relationships_from(near: Any, far: Any) -> Any:
    """Live relationships whose `near` end is :sid, each with the brief of its `far` end."""
    on_far = (col(AttackObject.release_id) == col(Relationship.release_id)) & (
        col(AttackObject.stix_id) == far
    )
    return (
        sa_select(*_LINK_COLUMNS, *BRIEF_COLUMNS)
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


def relationships_of(
    session: Session, *, release_id: int, stix_id: str
) -> list[tuple[RelationshipLink, Brief]]:
    """Every live relationship from or to one object, each with the brief of its far end."""
    rows = session.connection().execute(_RELATIONSHIPS_OF, {"rid": release_id, "sid": stix_id})
    return [(RelationshipLink(*r[:4]), Brief(*r[4:])) for r in rows]


_RELATIONSHIP_IDS = union_all(
    sa_select(col(Relationship.stix_id)).where(
        *_LIVE_REL, col(Relationship.source_ref) == bindparam("sid")
    ),
    sa_select(col(Relationship.stix_id)).where(
        *_LIVE_REL, col(Relationship.target_ref) == bindparam("sid")
    ),
)


def relationship_ids_of(session: Session, *, release_id: int, stix_id: str) -> list[str]:
    """STIX ids of the live relationships from or to one object (whose texts a page shows)."""
    params = {"rid": release_id, "sid": stix_id}
    return list(session.connection().execute(_RELATIONSHIP_IDS, params).scalars())


def attributed_to(session: Session, *, release_id: int, refs: Iterable[str]) -> list[str]:
    """STIX ids of what the live `attributed-to` relationships of `refs` point to."""
    params = {"rid": release_id, "ids": list(refs)}
    return list(session.connection().execute(_ATTRIBUTED_TO, params).scalars())


def mitigation_links(
    session: Session, *, release_id: int, technique_ids: Collection[str]
) -> list[tuple[str | None, str | None, str]]:
    """(technique id, mitigation id, mitigation name) of live mitigations of the techniques."""
    mit, tech = aliased(AttackObject), aliased(AttackObject)
    rid = release_id
    stmt = (
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
            col(tech.attack_id).in_(list(technique_ids)),
        )
    )
    return [(t, m, n) for t, m, n in session.execute(stmt).all()]
