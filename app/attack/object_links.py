"""What an object page reads of one ATT&CK object: the object by id (or STIX id), its live
neighbours, and its derived detection links (technique ↔ data component ↔ analytic ↔ strategy).

Relationships are read through `relationships.py`; the detection links come from the ingest-time
`technique_data_component` rows, one indexed statement per kind of near end, so a page asks a few
questions whatever the number of techniques it lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Select, Text, bindparam, cast
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from app.attack.objects import KIND_LABEL, find_object, objects_by_stix_id
from app.attack.relationships import relationship_ids_of, relationships_of
from app.attack.rows import OBJECT_COLUMNS, Brief, ObjectRow
from app.attack.tables import AttackObject, Citation, Release, TechniqueDataComponent
from app.core.errors import NotFound

# kind → the STIX type prefix of an object addressed by STIX id (data components before 18)
_STIX_PREFIX = {
    "data_component": "x-mitre-data-component--",
    "data_source": "x-mitre-data-source--",
    "detection_strategy": "x-mitre-detection-strategy--",
    "analytic": "x-mitre-analytic--",
}


class Neighbour(NamedTuple):
    """One live relationship of the object: its type, which way it points, the far end."""

    relationship_type: str
    direction: str  # "out": the object is the source; "in": the target
    far: Brief
    description: str


class DetectionLink(NamedTuple):
    """One derived detection link (STIX ids); strategy and analytic are None before 18."""

    technique_ref: str
    data_component_ref: str
    detection_strategy_ref: str | None
    analytic_ref: str | None


def find_page_object(
    session: Session, *, releases: Sequence[Release], kind: str, ref: str
) -> tuple[Release, ObjectRow]:
    """The object an object page names: by ATT&CK id, or by STIX id for objects without one,
    in the first release that has it; NotFound names the releases searched."""
    for release in releases:
        rid = release.id or 0
        if ref.lower().startswith(_STIX_PREFIX.get(kind, "\0")):
            obj = objects_by_stix_id(session, release_id=rid, stix_ids=[ref.lower()]).get(
                ref.lower()
            )
        else:
            obj = find_object(session, release_id=rid, kind=kind, attack_id=ref)
        if obj is not None and obj.kind == kind:
            return release, obj
    where = ", ".join(f"{r.domain} {r.version}" for r in releases)
    raise NotFound(
        f"{KIND_LABEL.get(kind, kind)} {ref} is not in ATT&CK {where}; "
        f"try another release (?domain=…&version=…) or search for it: /search?q={ref}"
    )


def neighbours(session: Session, *, release_id: int, stix_id: str) -> list[Neighbour]:
    """Every live relationship of one object whose far end is live (neither revoked nor
    deprecated), as `related` reads them; one statement."""
    rows = relationships_of(session, release_id=release_id, stix_id=stix_id)
    return [
        Neighbour(
            link.relationship_type,
            "out" if link.source_ref == stix_id else "in",
            far,
            link.description,
        )
        for link, far in rows
        if far.live
    ]


_LINK_COLUMNS = (
    col(TechniqueDataComponent.technique_ref),
    col(TechniqueDataComponent.data_component_ref),
    col(TechniqueDataComponent.detection_strategy_ref),
    col(TechniqueDataComponent.analytic_ref),
)
_NEAR = {
    "data_component": col(TechniqueDataComponent.data_component_ref),
    "detection_strategy": col(TechniqueDataComponent.detection_strategy_ref),
    "analytic": col(TechniqueDataComponent.analytic_ref),
    "technique": col(TechniqueDataComponent.technique_ref),
}


@cache
def _links_statement(kind: str) -> Select:  # type: ignore[type-arg]
    return sa_select(*_LINK_COLUMNS).where(
        col(TechniqueDataComponent.release_id) == bindparam("rid"),
        _NEAR[kind].in_(bindparam("refs", expanding=True)),
    )


def detection_links(
    session: Session, *, release_id: int, kind: str, refs: Sequence[str]
) -> list[DetectionLink]:
    """The derived detection links whose `kind` end (data_component, detection_strategy,
    analytic, technique) is one of `refs`."""
    if not refs:
        return []
    params = {"rid": release_id, "refs": list(refs)}
    return [DetectionLink(*r) for r in session.execute(_links_statement(kind), params).all()]


_COMPONENTS_OF_SOURCE: Any = sa_select(*OBJECT_COLUMNS).where(
    col(AttackObject.release_id) == bindparam("rid"),
    col(AttackObject.kind) == "data_component",
    cast(col(AttackObject.data), Text).contains(bindparam("sid")),
)


def components_of_source(session: Session, *, release_id: int, stix_id: str) -> list[ObjectRow]:
    """A data source's live data components (`data_source_ref`), by name; the text match
    narrows in SQL, the decoded field decides."""
    rows = session.execute(_COMPONENTS_OF_SOURCE, {"rid": release_id, "sid": stix_id}).all()
    out = [ObjectRow(*r) for r in rows]
    return sorted(
        (
            o
            for o in out
            if o.data.get("data_source_ref") == stix_id and not o.revoked and not o.deprecated
        ),
        key=lambda o: o.name.lower(),
    )


_CITATION_URLS = sa_select(
    col(Citation.owner_ref), col(Citation.source_name), col(Citation.url)
).where(
    col(Citation.release_id) == bindparam("rid"),
    col(Citation.source_name).in_(bindparam("names", expanding=True)),
)


def citation_urls(
    session: Session, *, release_id: int, names: Sequence[str], stix_id: str | None = None
) -> dict[str, str]:
    """Source name → URL for the sources a page cites (names without a URL left out).

    The URL is the one the page's object (`stix_id`) gives, else one of its relationships,
    else any object of the release (a page also shows its neighbours' texts): a few names
    carry different URLs in different objects.
    """
    if not names:
        return {}
    params = {"rid": release_id, "names": list(set(names))}
    rows = session.execute(_CITATION_URLS, params).all()
    own = {stix_id} if stix_id else set()
    rels = (
        set(relationship_ids_of(session, release_id=release_id, stix_id=stix_id))
        if stix_id
        else set()
    )
    out: dict[str, str] = {}
    for rank in (own, rels, None):
        for owner, name, url in rows:
            if name not in out and (rank is None or owner in rank):
                out[name] = url
    return out
