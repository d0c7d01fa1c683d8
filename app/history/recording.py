"""Recording: the coverage of every scope a change can move, compared with the scope's last
record, the difference written with its reasons, in the change's own transaction.

`HistoryRecorder` is what `core.changes` calls: `before` reads the catalog's rules as they were,
`after` (run by `transaction()` just before it commits, after the audit event) writes one
snapshot per change. Which scopes a change recomputes:

- catalog import, replace, upgrade, delete: `catalog:<name>`, `all:<domain>`, and the
  environments of that domain;
- environment import, delete: `environment:<name>`;
- release ingest: `all:<domain>` and the environments of that domain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from app.attack import service as attack_service
from app.auth import service as auth_service
from app.catalog import service as catalog_service
from app.core.changes import Change
from app.coverage import service as coverage_service
from app.environment import service as environment_service
from app.history.logbook import write_logbook
from app.history.reasons import ReasonContext, Value
from app.history.retention import thin
from app.history.tables import CoverageSnapshot
from app.history.writing import ScopeValues, write_scope, write_snapshot

if TYPE_CHECKING:
    from app.attack.tables import Release
    from app.auth.models import AuditEventRead
    from app.core.config import Settings
    from app.coverage.service import Scope


class HistoryRecorder:
    """The coverage history's recorder, attached to an engine with the settings it scores by."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def before(self, session: Session, change: Change) -> Any:
        if change.catalog is None:
            return {}
        return catalog_service.rule_footprints(session, catalog=change.catalog)

    def after(self, session: Session, changes: Sequence[tuple[Change, Any]]) -> None:
        event = auth_service.event_of(session)
        now = datetime.now(UTC)
        for change, before in _merged(changes):
            record(session, change, before, self.settings, event=event, at=now)
        if self.settings.history_keep_days is not None:
            thin(session, keep_days=self.settings.history_keep_days, now=now)


def _merged(changes: Sequence[tuple[Change, Any]]) -> list[tuple[Change, Any]]:
    """An ingest of several releases of one domain is one change of that domain's coverage
    (recorded once, naming the last release)."""
    out: list[tuple[Change, Any]] = []
    ingests: dict[str, int] = {}
    for change, before in changes:
        if change.cause == "release_ingest" and change.domain in ingests:
            out[ingests[change.domain]] = (change, before)
            continue
        if change.cause == "release_ingest":
            ingests[change.domain] = len(out)
        out.append((change, before))
    return out


def record(
    session: Session,
    change: Change,
    before: dict[str, catalog_service.RuleFootprint],
    settings: Settings,
    *,
    event: AuditEventRead | None,
    at: datetime,
) -> CoverageSnapshot:
    """One snapshot of `change`: every scope it can move, compared and written."""
    after = _footprints_after(session, change)
    if change.cause == "catalog_import" and change.catalog:
        write_logbook(session, change, settings.coverage, at=at)
    snapshot = write_snapshot(session, change, event, at)
    for scope in _scopes(session, change, settings):
        index = attack_service.technique_index(session, release=_release_named(session, scope))
        ctx = ReasonContext(change, before, after, _status_in(index))
        write_scope(session, snapshot.id or 0, scope, ctx)
    return snapshot


def _footprints_after(session: Session, change: Change) -> dict[str, catalog_service.RuleFootprint]:
    if change.catalog is None or change.cause == "catalog_delete":
        return {}
    return catalog_service.rule_footprints(session, catalog=change.catalog)


def _status_in(index: attack_service.TechniqueIndex) -> Any:
    def status_of(technique: str) -> tuple[str, str | None]:
        info = index.techniques.get(technique)
        return (info.status, info.revoked_by) if info else ("missing", None)

    return status_of


def _release_named(session: Session, scope: ScopeValues) -> Release:
    domain, version = scope.release.split(" ", 1)
    return attack_service.get_release(session, domain=domain, version=version)


def _scopes(session: Session, change: Change, settings: Settings) -> Iterable[ScopeValues]:
    """The scopes `change` can move, each recomputed inside the change's transaction."""
    if change.cause.startswith("environment"):
        yield _environment_scope(session, change.environment or "", change.domain, settings)
        return
    if change.catalog is not None:
        yield _catalog_scope(session, change, settings)
    yield _all_scope(session, change.domain, settings)
    for env in environment_service.list_environments(session):
        if env.domain == change.domain:
            yield _environment_scope(session, env.name, change.domain, settings)


def _catalog_scope(session: Session, change: Change, settings: Settings) -> ScopeValues:
    key = f"catalog:{change.catalog}"
    if change.cause == "catalog_delete":
        return ScopeValues(key, _newest(session, change.domain), {}, environment=False)
    row = catalog_service.get_catalog_row(session, name=change.catalog or "")
    release = attack_service.get_release(session, domain=row.domain, version=row.attack_version)
    scope = coverage_service.make_scope(session, release=release, catalogs=[row.name])
    return _computed(session, key, scope, _named(release), settings)


def _all_scope(session: Session, domain: str, settings: Settings) -> ScopeValues:
    release = attack_service.get_release(session, domain=domain)
    key = f"all:{domain}"
    if not catalog_service.catalog_ids(session, None):
        return ScopeValues(key, _named(release), {}, environment=False)
    scope = coverage_service.make_scope(session, release=release)
    return _computed(session, key, scope, _named(release), settings)


def _environment_scope(session: Session, name: str, domain: str, settings: Settings) -> ScopeValues:
    key = f"environment:{name}"
    if name not in {e.name for e in environment_service.list_environments(session)}:
        return ScopeValues(key, _newest(session, domain), {}, environment=True)
    scope = coverage_service.make_scope(session, environment=name, kb_dir=settings.kb_dir)
    return _computed(session, key, scope, _named(scope.release), settings)


def _computed(
    session: Session, key: str, scope: Scope, release: str, settings: Settings
) -> ScopeValues:
    rows = coverage_service.technique_rows(session, scope=scope, weights=settings.coverage)
    judged = scope.environment is not None
    values: dict[str, Value] = {
        r.id: (round(r.score, 4), r.state if judged else None) for r in rows if r.covered
    }
    return ScopeValues(key, release, values, environment=judged)


def _named(release: Release) -> str:
    return f"{release.domain} {release.version}"


def _newest(session: Session, domain: str) -> str:
    return _named(attack_service.get_release(session, domain=domain))
