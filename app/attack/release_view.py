"""A release as the pure diff (`changes`) reads it, and the diff of two loaded releases.

A view is built once per loaded release (a release never changes; a re-ingest is a new row with a
new load time) and shared read-only: the diff and `stale_mappings` only read it.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from app.attack import changes
from app.attack.changes import VIEW_KINDS, ReleaseView
from app.attack.models import ReleaseChanges
from app.attack.relationships import relationships
from app.attack.releases import release_key
from app.attack.tables import AttackObject, Release
from app.core.cache import CacheSpec, cached
from app.core.errors import InvalidInput

# A view holds every technique and detection object of a release with its description (a few MB
# for an 18.x enterprise release); a diff needs two, a refresh compares neighbours.
RELEASE_VIEWS: CacheSpec[ReleaseView] = CacheSpec("attack.release_view", size=6)


def release_view(session: Session, *, release: Release) -> ReleaseView:
    """The objects and structural relationships of one release, built once per loaded release."""
    return cached(
        session, RELEASE_VIEWS, release_key(release), lambda: _load_view(session, release)
    )


def _load_view(session: Session, release: Release) -> ReleaseView:
    rid = release.id or 0
    objects = session.exec(
        select(AttackObject).where(
            AttackObject.release_id == rid, col(AttackObject.kind).in_(VIEW_KINDS)
        )
    ).all()
    # revoked-by counts whatever its own flags say (as the technique index does); a revoked or
    # deprecated subtechnique-of no longer makes a parent
    live = relationships(
        session, release_id=rid, types=["revoked-by"], include_revoked=True, include_deprecated=True
    ) + relationships(session, release_id=rid, types=["subtechnique-of"])
    return changes.build_view(
        domain=release.domain,
        version=release.version,
        detection_model=release.detection_model,
        objects=objects,
        relationships=[link[:3] for link in live],
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
    return changes.diff_releases(
        release_view(session, release=old),
        release_view(session, release=new),
        with_text=with_text,
    )
