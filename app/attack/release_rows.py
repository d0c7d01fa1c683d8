"""Whole-release reads for indexes other domains derive once per loaded release.

Coverage's release facts need every live object of a few kinds, every analytic's id and every
technique → data component link of a release; they read them here instead of the tables. Rows
come back as the database gives them (tens of thousands per release); statements are built once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from app.attack.tables import AttackObject, TechniqueDataComponent


class LiveObject(NamedTuple):
    """An object neither revoked nor deprecated: its STIX id, kind, ATT&CK id and name."""

    stix_id: str
    kind: str
    attack_id: str | None
    name: str


class TechniqueComponentRow(NamedTuple):
    """A technique → data component link derived at ingest (both detection models)."""

    technique_ref: str
    data_component_ref: str
    analytic_ref: str | None  # 18+: the analytic that names the data component


_LIVE_OBJECTS = sa_select(
    col(AttackObject.stix_id),
    col(AttackObject.kind),
    col(AttackObject.attack_id),
    col(AttackObject.name),
).where(
    col(AttackObject.release_id) == bindparam("rid"),
    col(AttackObject.kind).in_(bindparam("kinds", expanding=True)),
    col(AttackObject.revoked).is_(False),
    col(AttackObject.deprecated).is_(False),
)
_ANALYTIC_IDS = sa_select(col(AttackObject.stix_id), col(AttackObject.attack_id)).where(
    col(AttackObject.release_id) == bindparam("rid"), col(AttackObject.kind) == "analytic"
)
_DATA_COMPONENT_LINKS = sa_select(
    col(TechniqueDataComponent.technique_ref),
    col(TechniqueDataComponent.data_component_ref),
    col(TechniqueDataComponent.analytic_ref),
).where(col(TechniqueDataComponent.release_id) == bindparam("rid"))


def live_objects(
    session: Session, *, release_id: int, kinds: Collection[str]
) -> Sequence[LiveObject]:
    """Every live object of the given kinds in the release (rows as they come, same fields)."""
    rows = session.execute(_LIVE_OBJECTS, {"rid": release_id, "kinds": list(kinds)}).all()
    return cast("Sequence[LiveObject]", rows)


def analytic_ids(session: Session, *, release_id: int) -> dict[str, str | None]:
    """Analytic STIX id → its ATT&CK id (AN0526), revoked ones included."""
    return dict(session.execute(_ANALYTIC_IDS, {"rid": release_id}).all())


def data_component_links(session: Session, *, release_id: int) -> Sequence[TechniqueComponentRow]:
    """Every technique → data component link of the release (rows as they come, same fields)."""
    rows = session.execute(_DATA_COMPONENT_LINKS, {"rid": release_id}).all()
    return cast("Sequence[TechniqueComponentRow]", rows)


class LogSourceComponent(NamedTuple):
    """ATT&CK's own word that a log source (name, channel) feeds a data component (18+: an
    analytic's log-source reference, or the data component's `x_mitre_log_sources`)."""

    name: str
    channel: str
    data_component: str  # its name in the release


_LOG_SOURCE_OWNERS = sa_select(
    col(AttackObject.stix_id),
    col(AttackObject.kind),
    col(AttackObject.name),
    col(AttackObject.data),
).where(
    col(AttackObject.release_id) == bindparam("rid"),
    col(AttackObject.kind).in_(("analytic", "data_component")),
    col(AttackObject.revoked).is_(False),
)


def log_source_components(session: Session, *, release_id: int) -> list[LogSourceComponent]:
    """Every (log source name, channel) → data component pair the release states; empty for
    releases before 18, whose data components name no log sources."""
    rows = session.execute(_LOG_SOURCE_OWNERS, {"rid": release_id}).all()
    names = {stix: name for stix, kind, name, _data in rows if kind == "data_component"}
    out: list[LogSourceComponent] = []
    for _stix, kind, name, data in rows:
        if kind == "data_component":
            refs = [(r, name) for r in (data or {}).get("log_sources") or ()]
        else:
            refs = [
                (r, names.get(str(r.get("x_mitre_data_component_ref")), ""))
                for r in (data or {}).get("log_source_references") or ()
            ]
        out += [
            LogSourceComponent(str(r.get("name", "")), str(r.get("channel", "")), dc)
            for r, dc in refs
            if isinstance(r, dict) and dc
        ]
    return out


class TextObject(NamedTuple):
    """An object as a text search reads it: ids, name, description, aliases, and whether it is
    still live (revoked and deprecated objects are found too, ranked after the live ones)."""

    stix_id: str
    kind: str
    attack_id: str | None
    name: str
    description: str
    aliases: tuple[str, ...]
    live: bool


_TEXT_OBJECTS = sa_select(
    col(AttackObject.stix_id),
    col(AttackObject.kind),
    col(AttackObject.attack_id),
    col(AttackObject.name),
    col(AttackObject.description),
    col(AttackObject.revoked),
    col(AttackObject.deprecated),
).where(
    col(AttackObject.release_id) == bindparam("rid"),
    col(AttackObject.kind).in_(bindparam("kinds", expanding=True)),
)
# Only the kinds that carry aliases decode `data` (an 18+ analytic's runs to kilobytes)
_ALIAS_KINDS = ("group", "software", "campaign")
_ALIASES = sa_select(col(AttackObject.stix_id), col(AttackObject.data)).where(
    col(AttackObject.release_id) == bindparam("rid"), col(AttackObject.kind).in_(_ALIAS_KINDS)
)


def text_objects(session: Session, *, release_id: int, kinds: Collection[str]) -> list[TextObject]:
    """Every object of the given kinds in the release with its texts, for a search index."""
    rows = session.execute(_TEXT_OBJECTS, {"rid": release_id, "kinds": list(kinds)}).all()
    aliases = {
        stix: tuple(_aliases(data or {}))
        for stix, data in session.execute(_ALIASES, {"rid": release_id}).all()
    }
    return [
        TextObject(stix, kind, aid, name, desc or "", aliases.get(stix, ()), not (rev or dep))
        for stix, kind, aid, name, desc, rev, dep in rows
    ]


def _aliases(data: dict[str, Any]) -> list[str]:
    """Groups and campaigns keep `aliases`, software `x_mitre_aliases` (both list the name)."""
    found = (data.get("aliases") or []) + (data.get("x_mitre_aliases") or [])
    return [str(a) for a in found if isinstance(a, str)]
