"""Environment import (all or nothing): parse, pick the release, place, replace in one go.

Like a catalog: the file is parsed purely, placed in one release (platforms, data components),
and replaces the environment of that name in one transaction with a new revision, the key of
every cache derived from it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from app.attack import service as attack_service
from app.attack.stix import domain_of
from app.catalog import service as catalog_service
from app.core.cache import caches_of
from app.core.changes import Change, changed
from app.core.config import Settings
from app.core.db import first_of_a_name, transaction
from app.core.errors import Conflict, InvalidInput, Location, TooLarge
from app.environment.environments import environment_read
from app.environment.formats import parse_environment
from app.environment.models import EnvironmentRead, ParsedEnvironment
from app.environment.resolve import Placer, ReleaseWords, Resolved, resolve
from app.environment.tables import Environment, EnvironmentLogSource, EnvironmentSystem

if TYPE_CHECKING:
    from app.attack.tables import Release

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


@dataclass(frozen=True)
class ImportResult:
    environment: EnvironmentRead
    replaced: bool


def name_from(file_name: str) -> str:
    """Default name from a file name: 'data-sources-endpoints.yaml' → 'data-sources-endpoints'."""
    stem = Path(file_name).name
    for suffix in (".yaml", ".yml", ".json", ".csv"):
        stem = stem.removesuffix(suffix)
    return _slug(stem)


def _slug(text: str) -> str:
    """A name as the API's paths take it: 'Data sources sample' → 'Data-sources-sample'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:80] or "environment"


def import_environment(
    engine: Engine,
    settings: Settings,
    *,
    file_name: str,
    data: bytes,
    format_id: str = "auto",
    name: str | None = None,
    domain: str | None = None,
    version: str | None = None,
    create_only: bool = False,
) -> ImportResult:
    """Parse `data`, place it in a release and replace the environment of that name
    (`create_only`: refuse to replace one, a Conflict)."""
    # refuses a file with any error, listing them all; warnings stay for the report
    parsed = parse_environment(file_name, data, format_id=format_id, limits=settings.limits)
    env_name = name or (_slug(parsed.name) if parsed.name else name_from(file_name))
    if not NAME.fullmatch(env_name):
        raise InvalidInput(
            f"environment name {env_name!r} must be 1-80 letters, digits, '.', '_' or '-'",
            Location(field="name"),
        )
    with first_of_a_name("environment", env_name), transaction(engine) as session:
        session.info["audit_target"] = env_name
        release = pick_release(session, parsed, domain, version)
        resolved = resolve(parsed, _placer(session, settings, release))
        _check_size(resolved, settings, file_name)
        existing = session.exec(select(Environment).where(Environment.name == env_name)).first()
        if existing is not None and create_only:
            raise Conflict(
                f"environment {env_name!r} exists; replace it with PUT /environments/{env_name} "
                "or kbmap env import",
                Location(field="name"),
            )
        cause = "environment_replace" if existing is not None else "environment_import"
        changed(session, Change(cause, release.domain, environment=env_name))
        if existing is not None:
            session.execute(delete(Environment).where(col(Environment.id) == existing.id))
            session.flush()
        row = _environment_row(parsed, resolved, release, env_name, file_name, data)
        row.revision = existing.revision + 1 if existing is not None else 1
        read = _write(session, row, resolved)
    caches_of(engine).clear()
    return ImportResult(environment=read, replaced=existing is not None)


def pick_release(
    session: Session, parsed: ParsedEnvironment, domain: str | None, version: str | None
) -> Release:
    """The caller's release, else the newest of the file's domain (enterprise when unstated);
    a caller's domain that contradicts the file's is refused rather than guessed between."""
    stated = domain_of(parsed.domain) if parsed.domain else None
    if domain and stated and domain_of(domain) != stated:
        raise InvalidInput(
            f"domain {domain} contradicts the file, which declares ATT&CK {stated}",
            Location(field="domain"),
        )
    return attack_service.get_release(session, domain=domain or stated, version=version)


def release_words(session: Session, release: Release) -> ReleaseWords:
    """What placing reads of the release: data components, platforms, ATT&CK's log sources."""
    rid = release.id or 0
    comps: dict[str, str] = {}
    for _stix, _kind, aid, name in attack_service.live_objects(
        session, release_id=rid, kinds=("data_component",)
    ):
        comps[name.lower()] = name
        if aid:
            comps[aid.lower()] = name
    log_sources: dict[tuple[str, str], set[str]] = {}
    for n, channel, dc in attack_service.log_source_components(session, release_id=rid):
        for k in catalog_service.analytic_ref_keys(n, channel):
            log_sources.setdefault((k[0].lower(), k[1].lower()), set()).add(dc)
    words = attack_service.vocabulary(session, release=release)
    index = attack_service.technique_index(session, release=release)
    return ReleaseWords(
        label=f"{release.domain} {release.version}",
        components=comps,
        platforms={p.lower(): p for p in words.platforms},
        log_sources={k: frozenset(v) for k, v in log_sources.items()},
        techniques=frozenset(index.techniques),
    )


def _placer(session: Session, settings: Settings, release: Release) -> Placer:
    table = catalog_service.log_source_map(settings)

    def rule_components(entry: dict[str, str]) -> list[str]:
        return [dc for dc, _key in catalog_service.data_components_for([entry], table)]

    return Placer(
        release_words(session, release), rule_components, catalog_service.analytic_ref_keys
    )


def _check_size(resolved: Resolved, settings: Settings, file_name: str) -> None:
    cap = settings.limits.max_environment_sources
    if len(resolved.sources) > cap:
        raise TooLarge(
            f"environment has {len(resolved.sources)} (system, log source) entries, over the "
            f"limit of {cap}",
            Location(file=file_name),
        )


def _environment_row(
    parsed: ParsedEnvironment,
    resolved: Resolved,
    release: Release,
    name: str,
    file_name: str,
    data: bytes,
) -> Environment:
    report = resolved.report
    assert report is not None
    return Environment(
        name=name,
        format_id=parsed.format_id,
        description=parsed.description,
        domain=release.domain,
        attack_version=release.version,
        source=file_name,
        sha256=hashlib.sha256(data).hexdigest(),
        imported_at=datetime.now(UTC),
        exceptions=report.exceptions,
        report=report.model_dump(mode="json"),
    )


def _write(session: Session, row: Environment, resolved: Resolved) -> EnvironmentRead:
    """The environment, its systems, then its log sources; read back as the API shows it."""
    session.add(row)
    session.flush()
    systems = [
        EnvironmentSystem(
            environment_id=row.id or 0, position=i, name=n, platforms=p, written_platforms=w
        )
        for i, (n, p, w) in enumerate(resolved.systems)
    ]
    session.add_all(systems)
    session.flush()
    session.add_all(
        EnvironmentLogSource(
            environment_id=row.id or 0,
            system_id=systems[s.system].id or 0,
            position=i,
            kind=s.kind,
            written=s.written,
            value=s.value,
            data_components=s.data_components,
            since=s.since,
            products=s.products,
            quality=s.quality,
            counted=s.counted,
            comment=s.comment,
        )
        for i, s in enumerate(resolved.sources)
    )
    session.flush()
    return environment_read(session, row)
