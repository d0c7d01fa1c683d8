"""Release views: one release's objects as the pure diff reads them, and the diff of two releases.

Re-exported by `service.py` (reach them as `attack_service.release_view` / `diff_releases`); they
live apart only to keep the service module small. A view is built once per loaded release (a
release never changes; a re-ingest is a new row with a new load time) and shared read-only: the
diff and `stale_mappings` only read it.
"""

from __future__ import annotations

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.attack import diff
from app.attack.diff import VIEW_KINDS, ReleaseView
from app.attack.models import ReleaseChanges
from app.attack.tables import AttackObject, Relationship, Release
from app.core.cache import BoundedCache
from app.core.errors import InvalidInput

STRUCTURE = ("revoked-by", "subtechnique-of")

# A view holds every technique and detection object of a release with its description (a few MB
# for an 18.x enterprise release); a diff needs two, a refresh compares neighbours.
_view_cache: BoundedCache[ReleaseView] = BoundedCache(size=6)


def release_view(session: Session, *, release: Release) -> ReleaseView:
    """The objects and structural relationships of one release, built once per loaded release."""
    return _view_cache.get_or_make(
        (release.id or 0, str(release.loaded_at)), lambda: _load_view(session, release)
    )


def _load_view(session: Session, release: Release) -> ReleaseView:
    rid = release.id or 0
    objects = session.exec(
        select(AttackObject).where(
            AttackObject.release_id == rid, col(AttackObject.kind).in_(VIEW_KINDS)
        )
    ).all()
    rels = session.execute(
        sa_select(
            col(Relationship.relationship_type),
            col(Relationship.source_ref),
            col(Relationship.target_ref),
            col(Relationship.revoked),
            col(Relationship.deprecated),
        ).where(
            col(Relationship.release_id) == rid,
            col(Relationship.relationship_type).in_(STRUCTURE),
        )
    ).all()
    # revoked-by counts whatever its own flags say (as the technique index does); a revoked or
    # deprecated subtechnique-of no longer makes a parent
    live = [(t, s, d) for t, s, d, rev, dep in rels if t == "revoked-by" or not (rev or dep)]
    return diff.build_view(
        domain=release.domain,
        version=release.version,
        detection_model=release.detection_model,
        objects=objects,
        relationships=live,
    )


def diff_releases(
    session: Session, *, old: Release, new: Release, with_text: bool = False
) -> ReleaseChanges:
    """What changed from release `old` to release `new` (same domain); description texts only
    with `with_text` (they are most of a release's bytes)."""
    if old.domain != new.domain:
        raise InvalidInput(
            f"cannot diff ATT&CK {old.domain} {old.version} against {new.domain} {new.version}"
        )
    return diff.diff_releases(
        release_view(session, release=old),
        release_view(session, release=new),
        with_text=with_text,
    )
