"""Which ATT&CK releases are loaded, which one a request means, and the key their caches use.

A loaded release never changes (a re-ingest is a new row with a new load time), so everything
derived from one is cached under `release_key`.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from app.attack.models import ReleaseRead
from app.attack.stix import DOMAINS, domain_of
from app.attack.tables import Release
from app.core.errors import NotFound


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
        raise NotFound(f"no ATT&CK release loaded for {what}{_loaded(session)}")
    return release


def _loaded(session: Session) -> str:
    """What is loaded, for an error that names an unknown release: never a bare "not found"."""
    rows = session.exec(
        select(Release.domain, Release.version).order_by(
            col(Release.domain), col(Release.version_key)
        )
    ).all()
    return f"; loaded: {', '.join(f'{d} {v}' for d, v in rows)}" if rows else ""


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
        wanted = f" for version {version}" if version else ""
        raise NotFound(f"no ATT&CK release loaded{wanted}{_loaded(session)}")
    return found


def release_key(release: Release) -> tuple[int, str]:
    """Cache key of a release's derived data: a re-ingest gets a new id and load time."""
    return (release.id or 0, str(release.loaded_at))


# Every release's key (`release_key`) as plain SQL rows (0, id, loaded_at), for a cache whose key
# must be read in one cheap statement outside the ORM (the technique page's JSON)
RELEASES_STATE_SQL = f'SELECT 0, id, loaded_at FROM "{Release.__tablename__}"'
