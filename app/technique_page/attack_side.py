"""The ATT&CK side of the page: everything but the rules, built once per release and shared.

A loaded release never changes, so this part (about three quarters of a page's cost) is cached
under the release's key; the rules, which change with every import, go on a copy (`service`).
Hot path: light column rows (`Brief`, `ObjectRow`), ~6 round trips, statements built once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.models import Ref, RelatedRef
from app.attack.rows import Brief, ObjectRow
from app.core.cache import CacheSpec, cached
from app.technique_page.detection_block import detection, ref
from app.technique_page.models import TechniquePage

if TYPE_CHECKING:
    from app.attack.tables import Release

ATTACK_SIDES: CacheSpec[TechniquePage] = CacheSpec("technique_page.attack_side", size=1024)

# relationship type → (far end, relationship text) of the live relationships *to* the technique
Incoming = dict[str, list[tuple[str, Brief]]]


def attack_side(session: Session, *, releases: Sequence[Release], attack_id: str) -> TechniquePage:
    """The page for one technique, without rules. Shared between callers: copy it with
    `model_copy(update=...)`, never change it."""
    key = (tuple(attack_service.release_key(r) for r in releases), attack_id.strip().upper())
    return cached(
        session, ATTACK_SIDES, key, lambda: _build(session, releases=releases, attack_id=attack_id)
    )


def _build(session: Session, *, releases: Sequence[Release], attack_id: str) -> TechniquePage:
    release, tech = attack_service.get_object(
        session, releases=releases, kind="technique", attack_id=attack_id
    )
    rid = release.id or 0
    parent, revoked_by, incoming = _relationships(session, release_id=rid, stix_id=tech.stix_id)
    uses = [o for _, o in incoming.get("uses", [])]
    campaigns = [o for o in uses if o.kind == "campaign"]
    groups = [o for o in uses if o.kind == "group"]
    groups += _attributed_groups(session, release_id=rid, campaigns=campaigns)
    strategies, components = detection(
        session, release_id=rid, technique=tech, detects=incoming.get("detects", [])
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
        revoked_by=ref(revoked_by) if revoked_by else None,
        tactics=[p["phase_name"] for p in data.get("kill_chain_phases") or ()],
        platforms=tech.platforms,
        is_subtechnique=bool(data.get("is_subtechnique")),
        parent=ref(parent) if parent else None,
        subtechniques=_sorted_refs(o for _, o in incoming.get("subtechnique-of", [])),
        detection=data.get("detection") or "",
        data_sources=list(data.get("data_sources") or ()),
        mitigations=_mitigations(incoming),
        data_components=components,
        detection_strategies=strategies,
        groups=_sorted_refs(groups),
        software=_sorted_refs(o for o in uses if o.kind == "software"),
        campaigns=_sorted_refs(campaigns),
    )


def _relationships(
    session: Session, *, release_id: int, stix_id: str
) -> tuple[Brief | None, Brief | None, Incoming]:
    """(parent, revoked-by, live relationships to the technique by type), in one statement."""
    parent = revoked_by = None
    incoming: Incoming = {}
    for link, far in attack_service.relationships_of(
        session, release_id=release_id, stix_id=stix_id
    ):
        if link.source_ref == stix_id:
            if link.relationship_type == "subtechnique-of":
                parent = far
            elif link.relationship_type == "revoked-by":
                revoked_by = far
        elif far.live:
            incoming.setdefault(link.relationship_type, []).append((link.description, far))
    return parent, revoked_by, incoming


def _attributed_groups(session: Session, *, release_id: int, campaigns: list[Brief]) -> list[Brief]:
    """Groups that use the technique through a campaign attributed to them."""
    if not campaigns:
        return []
    refs = attack_service.attributed_to(
        session, release_id=release_id, refs=[c.stix_id for c in campaigns]
    )
    found = attack_service.briefs(session, release_id=release_id, refs=refs)
    return [b for b in found.values() if b.kind == "group" and b.live]


def _mitigations(incoming: Incoming) -> list[RelatedRef]:
    return sorted(
        (
            RelatedRef(id=o.attack_id, name=o.name, description=desc)
            for desc, o in incoming.get("mitigates", [])
            if o.kind == "mitigation"
        ),
        key=lambda m: m.id or "",
    )


def _sorted_refs(objs: Iterable[Brief | ObjectRow]) -> list[Ref]:
    unique = {o.stix_id: o for o in objs}
    return sorted((ref(o) for o in unique.values()), key=lambda r: (r.id or "", r.name))
