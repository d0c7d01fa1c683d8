"""A hand-kept score logbook as history: each date a DeTT&CT technique administration file logged
a score becomes a point of the catalog's scope, backdated, so a team moving from DeTT&CT keeps its
past. Written at the catalog's first import only (its scope has no history yet), before the
import's own snapshot; a later import of the same file adds no point twice."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from app.catalog import service as catalog_service
from app.coverage import service as coverage_service
from app.history.reasons import ReasonContext, Value
from app.history.writing import ScopeValues, has_history, write_scope, write_snapshot

if TYPE_CHECKING:
    from app.auth.models import AuditEventRead
    from app.catalog.service import LogbookEntry
    from app.core.changes import Change
    from app.core.config import CoverageWeights


def write_logbook(
    session: Session,
    change: Change,
    weights: CoverageWeights,
    *,
    at: datetime,
    event: AuditEventRead | None = None,
) -> int:
    """One point per logged date before `at`, oldest first, each naming the import's actor and
    audit event (who brought the logbook in); how many were written."""
    key = f"catalog:{change.catalog}"
    entries = catalog_service.logbooks(session, catalog=change.catalog or "")
    if not entries or has_history(session, key):
        return 0
    row = catalog_service.get_catalog_row(session, name=change.catalog or "")
    release = f"{row.domain} {row.attack_version}"
    logged = replace(change, cause="logbook", release=release)
    latest: dict[tuple[str, str], LogbookEntry] = {}
    points = 0
    for date in sorted({e.date for e in entries}):
        when = datetime.fromisoformat(date).replace(tzinfo=UTC)
        if when >= at:
            break
        latest.update(_first_written(entries, date))
        snapshot = write_snapshot(session, logged, event, when)
        values = ScopeValues(key, release, _values(latest, weights), environment=False)
        write_scope(session, snapshot.id or 0, values, ReasonContext(logged))
        points += 1
    return points


def _first_written(entries: list[LogbookEntry], date: str) -> dict[tuple[str, str], LogbookEntry]:
    """Each rule's score of `date`; two on one date: the first written, as DeTT&CT reads a tie."""
    day: dict[tuple[str, str], LogbookEntry] = {}
    for e in entries:
        if e.date == date:
            day.setdefault((e.rule_id, e.technique), e)
    return day


def _values(
    latest: dict[tuple[str, str], LogbookEntry], weights: CoverageWeights
) -> dict[str, Value]:
    """Each technique's score from its rules' latest logged scores, as the import weighs them."""
    per_technique: dict[str, list[float]] = {}
    for (_rule, technique), e in latest.items():
        w = coverage_service.rule_weight(
            enabled=e.enabled, status="stable", level=e.severity, w=weights
        )
        per_technique.setdefault(technique, []).append(w)
    scores = {t: coverage_service.score(ws, weights) for t, ws in per_technique.items()}
    return {t: (round(s, 4), None) for t, s in scores.items() if s > 0}
