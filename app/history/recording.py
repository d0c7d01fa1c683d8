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

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from app.attack import service as attack_service
from app.auth import service as auth_service
from app.catalog import service as catalog_service
from app.core.changes import Change
from app.core.db import one_writer_at_a_time
from app.core.errors import NotFound
from app.coverage import service as coverage_service
from app.environment import service as environment_service
from app.history.logbook import write_logbook
from app.history.reasons import ReasonContext, Value
from app.history.retention import thin
from app.history.tables import CoverageSnapshot
from app.history.writing import ScopeValues, has_history, write_scope, write_snapshot

if TYPE_CHECKING:
    from app.attack.tables import Release
    from app.auth.models import AuditEventRead
    from app.core.config import Settings
    from app.coverage.service import Scope


class HistoryRecorder:
    """The coverage history's recorder, attached to an engine with the settings it scores by."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def before(self, session: Session, change: Change) -> Before:
        """The catalog's rules as they were, and the scopes the change moves that have no
        history yet, as they were (their first point: coverage as kbmap found it)."""
        rewrites = change.cause in ("catalog_replace", "catalog_upgrade")  # else: no rules before
        footprints = (
            catalog_service.rule_footprints(session, catalog=change.catalog or "")
            if rewrites  # a delete's reason is the delete
            else {}
        )
        return Before(footprints, _unrecorded(session, change, self.settings))

    def after(self, session: Session, changes: Sequence[tuple[Change, Any]]) -> None:
        one_writer_at_a_time(session, "kbmap coverage history")  # deltas follow one order
        event = auth_service.event_of(session)
        now = datetime.now(UTC)
        for change, before in _merged(changes):
            if before.found:
                _write_found(session, change, before.found, at=now)
            record(session, change, before.footprints, self.settings, event=event, at=now)
        if self.settings.history_keep_days is not None:
            thin(session, keep_days=self.settings.history_keep_days, now=now)


@dataclass(frozen=True)
class Before:
    footprints: dict[str, catalog_service.RuleFootprint]
    found: list[ScopeValues]  # scopes with no history yet, before the change


def _unrecorded(session: Session, change: Change, settings: Settings) -> list[ScopeValues]:
    """The scopes `change` moves that have no point yet and cover something now: a database
    that had catalogs before kbmap kept history (or a scope's first change) starts from them."""
    keys = [k for k in _scope_keys(session, change) if not has_history(session, k)]
    try:
        found = [_compute(session, key, change, settings) for key in keys]
    except NotFound:  # the domain's first release: nothing covered yet
        return []
    return [s for s in found if s.values]


def _write_found(
    session: Session, change: Change, found: list[ScopeValues], *, at: datetime
) -> None:
    """One `found` point before the change's own: coverage as the history found it."""
    start = replace(change, cause="found", release=None)
    snapshot = write_snapshot(session, start, None, at)
    for scope in found:
        write_scope(session, snapshot.id or 0, scope, ReasonContext(start))


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
    footprints: dict[str, catalog_service.RuleFootprint],
    settings: Settings,
    *,
    event: AuditEventRead | None,
    at: datetime,
) -> CoverageSnapshot:
    """One snapshot of `change`: every scope it can move, compared and written."""
    after = _FootprintsAfter(session, change)  # read only if a technique moved
    if change.cause == "catalog_import" and change.catalog:
        write_logbook(session, change, settings.coverage, at=at, event=event)
    snapshot = write_snapshot(session, change, event, at)
    for scope in _scopes(session, change, settings):
        ctx = ReasonContext(change, footprints, after, _status_in(session, scope))
        write_scope(session, snapshot.id or 0, scope, ctx)
    return snapshot


class _FootprintsAfter(Mapping[str, "catalog_service.RuleFootprint"]):
    """The catalog's rules after the change, read on first use: only a technique that moved
    needs a reason, and most re-imports move none."""

    def __init__(self, session: Session, change: Change) -> None:
        self.session, self.change = session, change
        self.rules: dict[str, catalog_service.RuleFootprint] | None = None

    def _read(self) -> dict[str, catalog_service.RuleFootprint]:
        if self.rules is None:
            gone = self.change.catalog is None or self.change.cause == "catalog_delete"
            self.rules = (
                {}
                if gone
                else catalog_service.rule_footprints(
                    self.session, catalog=self.change.catalog or ""
                )
            )
        return self.rules

    def __getitem__(self, rule_id: str) -> catalog_service.RuleFootprint:
        return self._read()[rule_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


def _status_in(session: Session, scope: ScopeValues) -> Any:
    """A technique's status in the scope's release, its index read on the first technique that
    moved (an ingest into a database without catalogs moves none)."""

    @cache
    def index() -> attack_service.TechniqueIndex:
        return attack_service.technique_index(session, release=_release_named(session, scope))

    def status_of(technique: str) -> tuple[str, str | None]:
        info = index().techniques.get(technique)
        return (info.status, info.revoked_by) if info else ("missing", None)

    return status_of


def _release_named(session: Session, scope: ScopeValues) -> Release:
    domain, version = scope.release.split(" ", 1)
    return attack_service.get_release(session, domain=domain, version=version)


def _scopes(session: Session, change: Change, settings: Settings) -> Iterable[ScopeValues]:
    """The scopes `change` can move, each computed from the session's state."""
    return (_compute(session, key, change, settings) for key in _scope_keys(session, change))


def _scope_keys(session: Session, change: Change) -> list[str]:
    if change.cause.startswith("environment"):
        return [f"environment:{change.environment}"]
    keys = [f"catalog:{change.catalog}"] if change.catalog is not None else []
    keys.append(f"all:{change.domain}")
    envs = environment_service.list_environments(session)
    return keys + [f"environment:{e.name}" for e in envs if e.domain == change.domain]


def _compute(session: Session, key: str, change: Change, settings: Settings) -> ScopeValues:
    kind, name = key.split(":", 1)
    if kind == "catalog":
        return _catalog_scope(session, change, settings)
    if kind == "all":
        return _all_scope(session, change.domain, settings)
    return _environment_scope(session, name, change.domain, settings)


def _catalog_scope(session: Session, change: Change, settings: Settings) -> ScopeValues:
    key = f"catalog:{change.catalog}"
    row = catalog_service.find_catalog_row(session, name=change.catalog or "")
    if row is None:  # deleted, or not yet imported
        return ScopeValues(key, _newest(session, change.domain), {}, environment=False)
    release = attack_service.get_release(session, domain=row.domain, version=row.attack_version)
    return _covered(session, key, coverage_service.Scope(release, [row]), settings)


def _all_scope(session: Session, domain: str, settings: Settings) -> ScopeValues:
    release = attack_service.get_release(session, domain=domain)
    catalogs = catalog_service.catalogs_by_id(session, catalog_service.catalog_ids(session, None))
    return _covered(session, f"all:{domain}", coverage_service.Scope(release, catalogs), settings)


def _covered(session: Session, key: str, scope: Scope, settings: Settings) -> ScopeValues:
    """A catalogs-only scope: each covered technique's score (`covered_scores`, not the rows)."""
    scores = coverage_service.covered_scores(session, scope=scope, weights=settings.coverage)
    values: dict[str, Value] = {t: (round(v, 4), None) for t, v in scores.items()}
    return ScopeValues(key, _named(scope.release), values, environment=False)


def _environment_scope(session: Session, name: str, domain: str, settings: Settings) -> ScopeValues:
    key = f"environment:{name}"
    if name not in {e.name for e in environment_service.list_environments(session)}:
        return ScopeValues(key, _newest(session, domain), {}, environment=True)
    telemetry = environment_service.environment_telemetry(session, name=name)
    release = attack_service.get_release(session, domain=telemetry.domain)
    catalogs = catalog_service.catalogs_by_id(session, catalog_service.catalog_ids(session, None))
    judged = coverage_service.EnvironmentScope(
        telemetry, catalog_service.platform_map(settings.kb_dir)
    )
    scope = coverage_service.Scope(release, catalogs, environment=judged)  # no filters to resolve
    return _judged(session, key, scope, settings)


def _judged(session: Session, key: str, scope: Scope, settings: Settings) -> ScopeValues:
    """An environment scope: each covered technique's score and effective state (the rows)."""
    rows = coverage_service.technique_rows(session, scope=scope, weights=settings.coverage)
    values: dict[str, Value] = {r.id: (round(r.score, 4), r.state) for r in rows if r.covered}
    return ScopeValues(key, _named(scope.release), values, environment=True)


def _named(release: Release) -> str:
    return f"{release.domain} {release.version}"


def _newest(session: Session, domain: str) -> str:
    return _named(attack_service.get_release(session, domain=domain))
