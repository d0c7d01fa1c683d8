"""Environment reads and delete: one, the list, and the telemetry coverage reads (cached)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from app.core.cache import CacheSpec, cached, caches_of
from app.core.changes import Change, changed
from app.core.db import transaction
from app.core.errors import Location, NotFound
from app.environment.models import (
    EnvironmentBrief,
    EnvironmentRead,
    EnvironmentReport,
    EnvironmentTelemetry,
    LogSourceRead,
    QualityRead,
    SystemRead,
    SystemTelemetry,
)
from app.environment.resolve import quality_factor
from app.environment.tables import Environment, EnvironmentLogSource, EnvironmentSystem

TELEMETRY: CacheSpec[EnvironmentTelemetry] = CacheSpec("environment.telemetry", 32)


def environment_key(env: Environment) -> tuple[int, str, int]:
    """The key of every cache derived from `env`: its row and its revision (bumped by every
    re-import), as a catalog's key."""
    return (env.id or 0, str(env.imported_at), env.revision)


def get_environment_row(session: Session, *, name: str) -> Environment:
    """The environment of that name; NotFound lists the known ones."""
    env = session.exec(select(Environment).where(Environment.name == name)).first()
    if env is None:
        known = session.exec(select(Environment.name).order_by(Environment.name)).all()
        listed = ", ".join(known) or "none (kbmap env import FILE)"
        raise NotFound(
            f"no environment named {name!r}; known: {listed}", Location(field="environment")
        )
    return env


def list_environments(session: Session) -> list[EnvironmentBrief]:
    envs = session.exec(select(Environment).order_by(Environment.name)).all()
    return [_brief(e) for e in envs]


def _brief(env: Environment) -> EnvironmentBrief:
    report = EnvironmentReport.model_validate(env.report)
    return EnvironmentBrief(
        name=env.name,
        format_id=env.format_id,
        domain=env.domain,
        attack_version=env.attack_version,
        imported_at=env.imported_at,
        systems=report.systems,
        data_components=report.data_components,
        unplaced=len(report.unplaced),
    )


def get_environment(session: Session, *, name: str) -> EnvironmentRead:
    return environment_read(session, get_environment_row(session, name=name))


def environment_read(session: Session, env: Environment) -> EnvironmentRead:
    """The environment with its systems and their log sources, in file order."""
    systems, sources = _rows(session, env)
    per_system: dict[int, list[LogSourceRead]] = defaultdict(list)
    for s in sources:
        per_system[s.system_id].append(_source_read(s))
    return EnvironmentRead(
        name=env.name,
        format_id=env.format_id,
        description=env.description,
        domain=env.domain,
        attack_version=env.attack_version,
        source=env.source,
        imported_at=env.imported_at,
        revision=env.revision,
        systems=[
            SystemRead(name=s.name, platforms=s.platforms, log_sources=per_system[s.id or 0])
            for s in systems
        ],
        report=EnvironmentReport.model_validate(env.report),
    )


def _rows(
    session: Session, env: Environment
) -> tuple[list[EnvironmentSystem], list[EnvironmentLogSource]]:
    systems = session.exec(
        select(EnvironmentSystem)
        .where(EnvironmentSystem.environment_id == env.id)
        .order_by(col(EnvironmentSystem.position))
    ).all()
    sources = session.exec(
        select(EnvironmentLogSource)
        .where(EnvironmentLogSource.environment_id == env.id)
        .order_by(col(EnvironmentLogSource.position))
    ).all()
    return list(systems), list(sources)


def _source_read(s: EnvironmentLogSource) -> LogSourceRead:
    quality = None
    if s.quality is not None:
        quality = QualityRead(**s.quality, factor=quality_factor(s.quality))
    return LogSourceRead(
        written=s.written,
        kind="data_component" if s.kind == "data_component" else "log_source",
        data_components=s.data_components,
        since=s.since,
        products=s.products,
        quality=quality,
        counted=s.counted,
        comment=s.comment,
    )


def delete_environment(engine: Engine, *, name: str) -> None:
    with transaction(engine) as session:
        session.info["audit_target"] = name
        env = get_environment_row(session, name=name)
        changed(session, Change("environment_delete", env.domain, environment=name))
        session.execute(delete(Environment).where(col(Environment.id) == env.id))
    caches_of(engine).clear()


def environment_telemetry(session: Session, *, name: str) -> EnvironmentTelemetry:
    """What coverage reads of the environment: per system, its platforms and each counted data
    component's best quality factor; once per import."""
    env = get_environment_row(session, name=name)
    return cached(session, TELEMETRY, environment_key(env), lambda: _telemetry(session, env))


def _telemetry(session: Session, env: Environment) -> EnvironmentTelemetry:
    systems, sources = _rows(session, env)
    comps: dict[int, dict[str, float]] = defaultdict(dict)
    spelled: dict[str, str] = {}
    for s in sources:
        if not s.counted:
            continue
        q = quality_factor(s.quality)
        for dc in s.data_components:
            have = comps[s.system_id]
            have[dc.lower()] = max(have.get(dc.lower(), 0.0), q)
            spelled[dc.lower()] = dc
    return EnvironmentTelemetry(
        name=env.name,
        domain=env.domain,
        key=environment_key(env),
        systems=tuple(
            SystemTelemetry(
                name=s.name,
                platforms=frozenset(p.lower() for p in s.platforms),
                components=comps[s.id or 0],
            )
            for s in systems
        ),
        spelled=spelled,
        exceptions=frozenset(env.exceptions),
    )


# Every environment's `environment_key` as plain SQL rows beside the releases' `(0, …)` and the
# catalogs' odd tags, for the technique page's cache key: the first column tags an environment
# row (negative) and carries its revision, so a re-import or a delete changes the key.
ENVIRONMENTS_STATE_SQL = (
    f'SELECT -1 - 2 * revision, id, imported_at FROM "{Environment.__tablename__}"'
)
