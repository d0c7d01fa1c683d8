"""Ingest flow: open sources → parse (pure) → derive links → write releases in one transaction.

All or nothing: any error in any source rolls back every release of the call. Rows go in through
`bulk_insert` (executemany of plain tuples); that, not ORM objects, is what keeps a 25k-object
release near the cost of parsing it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import orjson
from sqlalchemy import Connection, Engine, Table, delete, insert, select
from sqlmodel import Session, col

from app.attack.detection import LinkRow, derive_links
from app.attack.sources import BundleFeed
from app.attack.stix import ParsedRelease, keep_alive, parse_bundle
from app.attack.tables import (
    AttackObject,
    Citation,
    Relationship,
    Release,
    TechniqueDataComponent,
    TechniqueTactic,
)
from app.core.cache import caches_of
from app.core.changes import Change, changed
from app.core.config import Limits
from app.core.db import (
    bulk_insert,
    database_error,
    indexes_built_after,
    rollback_journal_while_empty,
    transaction,
    wal_again,
)
from app.core.errors import InvalidInput, KbmapError, Location
from app.core.gc_pause import paused_gc
from app.core.progress import Step

_RELEASE: Table = Release.__table__  # type: ignore[attr-defined]
_RELEASE_TABLES: list[Table] = [
    m.__table__  # type: ignore[union-attr]
    for m in (AttackObject, Relationship, TechniqueTactic, TechniqueDataComponent, Citation)
]


@dataclass(frozen=True)
class IngestOutcome:
    domain: str
    version: str
    source: str
    status: str  # loaded | replaced | unchanged
    objects: int
    relationships: int
    techniques: int


def ingest_sources(
    engine: Engine,
    sources: Sequence[str] | BundleFeed,
    *,
    limits: Limits,
    version: str | None = None,
    replace: bool = False,
    step: Step | None = None,
    keep: list[object] | None = None,
) -> list[IngestOutcome]:
    """Load every bundle the sources name; one transaction for the whole call.

    `sources` may be a BundleFeed already reading (the CLI starts one before its own imports);
    the next bundle is read while the current one is parsed and written. `keep` receives what
    was parsed instead of freeing it (see `keep_alive`).
    """
    feed = sources if isinstance(sources, BundleFeed) else BundleFeed(sources, limits=limits)
    outcomes: list[IngestOutcome] = []
    seen: set[tuple[str, str]] = set()
    steps = 2 * len(feed.sources)  # read and parse, then write, per bundle
    new_file = False
    try:
        with feed, paused_gc(), transaction(engine) as session:
            new_file = rollback_journal_while_empty(session.connection(), _RELEASE)
            for index, (src, data, sha) in enumerate(feed):
                if step:
                    step(f"reading {Path(src).name}", done=2 * index, total=steps)
                parsed = parse_bundle(
                    data,
                    source=src,
                    version=version,
                    max_bytes=limits.max_bundle_bytes,
                    sha256=sha,
                    keep=keep,
                )
                keep_alive(keep, parsed)  # freeing a parsed release costs an exiting CLI time
                _refuse_twice(parsed, seen)
                writing = f"writing {parsed.domain} {parsed.version}"
                progress = partial(step, writing, 2 * index + 1, steps) if step else None
                announce = partial(_announce, session, parsed, progress)
                outcomes.append(
                    _store(session.connection(), parsed, replace=replace, announce=announce)
                )
            if step:
                step("committing", done=steps, total=steps)
    finally:
        if new_file:
            wal_again(engine)
    caches_of(engine).clear()
    return outcomes


def _refuse_twice(parsed: ParsedRelease, seen: set[tuple[str, str]]) -> None:
    key = (parsed.domain, parsed.version)
    if key in seen:
        raise InvalidInput(
            f"{parsed.domain} {parsed.version} is named twice in one ingest",
            Location(file=parsed.source),
        )
    seen.add(key)


def _store(
    connection: Connection,
    parsed: ParsedRelease,
    *,
    replace: bool,
    announce: Callable[[], object],
) -> IngestOutcome:
    """Write one release unless it is loaded already (`replace` drops the loaded one first);
    `announce` runs just before anything is written."""
    existing = connection.scalar(  # Core: the ORM's first query costs 20 ms
        select(col(Release.id)).where(
            col(Release.domain) == parsed.domain,
            col(Release.version) == parsed.version,
        )
    )
    if existing is not None and not replace:
        return _outcome(parsed, "unchanged")
    announce()
    if existing is not None:
        connection.execute(delete(Release).where(col(Release.id) == existing))
    write_release(connection, parsed)
    return _outcome(parsed, "replaced" if existing is not None else "loaded")


def _announce(
    session: Session, parsed: ParsedRelease, progress: Callable[[], object] | None
) -> None:
    """Just before a release is written: the change is told (its record reads the state
    before), then progress."""
    changed(
        session,
        Change("release_ingest", parsed.domain, release=f"{parsed.domain} {parsed.version}"),
    )
    if progress:
        progress()


def _outcome(parsed: ParsedRelease, status: str) -> IngestOutcome:
    return IngestOutcome(
        domain=parsed.domain,
        version=parsed.version,
        source=parsed.source,
        status=status,
        objects=len(parsed.objects),
        relationships=len(parsed.relationships),
        techniques=_active_techniques(parsed),
    )


def _active_techniques(parsed: ParsedRelease) -> int:
    return sum(1 for r in parsed.objects if r[1] == "technique" and not r[8] and not r[9])


def write_release(connection: Connection, parsed: ParsedRelease) -> int:
    """Insert one parsed release; a database refusal becomes an error naming the source."""
    try:
        return _insert_release(connection, parsed)
    except KbmapError:
        raise
    except Exception as exc:  # e.g. a constraint or a dropped connection, not a traceback
        known = database_error(exc)  # a full disk or a lost database says so
        if known is not None:
            raise known from exc
        raise InvalidInput(
            f"could not store {parsed.domain} {parsed.version}: {type(exc).__name__}",
            Location(file=parsed.source),
        ) from exc


def _insert_release(connection: Connection, parsed: ParsedRelease) -> int:
    """Insert one parsed release with bulk inserts; returns the new release id."""
    links, model = derive_links(parsed.objects, parsed.relationships)
    result = connection.execute(
        insert(Release).values(
            domain=parsed.domain,
            version=parsed.version,
            version_key=parsed.version_key,
            stix_version=parsed.stix_version,
            source=parsed.source,
            sha256=parsed.sha256,
            loaded_at=datetime.now(UTC),
            object_count=len(parsed.objects) + len(parsed.relationships),
            technique_count=_active_techniques(parsed),
            detection_model=model,
        )
    )
    rid = int(result.inserted_primary_key[0])  # type: ignore[index]
    with indexes_built_after(connection, _RELEASE_TABLES):  # the first release of a database
        _insert_rows(connection, rid, parsed, links)
    return rid


def _insert_rows(
    connection: Connection, rid: int, parsed: ParsedRelease, links: list[LinkRow]
) -> None:
    dumps = orjson.dumps
    bulk_insert(
        connection,
        "attack_object",
        (
            "release_id",
            "stix_id",
            "kind",
            "attack_id",
            "name",
            "description",
            "url",
            "created",
            "modified",
            "revoked",
            "deprecated",
            "platforms",
            "data",
        ),
        [(rid, *r[:10], dumps(r[10]).decode(), dumps(r[11]).decode()) for r in parsed.objects],
    )
    bulk_insert(
        connection,
        "relationship",
        (
            "release_id",
            "stix_id",
            "relationship_type",
            "source_ref",
            "target_ref",
            "description",
            "revoked",
            "deprecated",
        ),
        [(rid, *r) for r in parsed.relationships],
    )
    bulk_insert(
        connection,
        "technique_tactic",
        ("release_id", "technique_ref", "tactic"),
        [(rid, t, s) for t, s in parsed.technique_tactics],
    )
    bulk_insert(
        connection,
        "technique_data_component",
        (
            "release_id",
            "technique_ref",
            "data_component_ref",
            "detection_strategy_ref",
            "analytic_ref",
        ),
        [(rid, *link) for link in links],
    )
    bulk_insert(
        connection,
        "attack_citation",
        ("release_id", "owner_ref", "source_name", "url"),
        [(rid, *c) for c in parsed.citations],
    )
