"""A history scope as a request names it (catalog=, environment=, domain=, tactic=, platform=),
resolved once, and its recorded points and deltas read in time order.

Every read folds the scope's deltas from its first point: the value of each technique at a point
is its last delta at or before it. `Filter` keeps the techniques a tactic or platform filter
keeps, judged by the release the scope was read on at that point.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlmodel import Session, col

from app.attack import service as attack_service
from app.core.errors import InvalidInput, Location, NotFound
from app.coverage.service import split_values
from app.history.models import Cause, HistoryScope
from app.history.reasons import Value
from app.history.tables import CoverageDelta, CoverageSnapshot, CoverageSnapshotScope

_POINTS = (
    select(
        col(CoverageSnapshot.id),
        col(CoverageSnapshot.at),
        col(CoverageSnapshot.cause),
        col(CoverageSnapshot.actor),
        col(CoverageSnapshot.audit_event_id),
        col(CoverageSnapshot.catalog),
        col(CoverageSnapshot.environment),
        col(CoverageSnapshot.release),
        col(CoverageSnapshotScope.release),
        col(CoverageSnapshotScope.covered),
        col(CoverageSnapshotScope.effective),
    )
    .join(CoverageSnapshotScope, col(CoverageSnapshotScope.snapshot_id) == col(CoverageSnapshot.id))
    .where(col(CoverageSnapshotScope.scope) == bindparam("scope"))
    .order_by(col(CoverageSnapshot.at), col(CoverageSnapshot.id))
)
_DELTAS = (
    select(
        col(CoverageDelta.snapshot_id),
        col(CoverageDelta.technique),
        col(CoverageDelta.score),
        col(CoverageDelta.state),
        col(CoverageDelta.reason),
    )
    .where(col(CoverageDelta.scope) == bindparam("scope"))
    .order_by(col(CoverageDelta.id))
)
_SCOPES = select(col(CoverageSnapshotScope.scope)).distinct()


class Point(NamedTuple):
    cause: Cause
    release: str
    covered: int
    effective: int | None


class Delta(NamedTuple):
    technique: str
    value: Value | None  # None: no longer covered
    reason: str


@dataclass(frozen=True)
class Recorded:
    """A scope's points in time order and each point's deltas."""

    scope: HistoryScope
    points: list[Point]
    deltas: dict[int, list[Delta]]


def resolve_scope(
    session: Session,
    *,
    catalog: str | None = None,
    environment: str | None = None,
    domain: str | None = None,
    tactics: Sequence[str] | None = None,
    platforms: Sequence[str] | None = None,
) -> HistoryScope:
    """The scope named; a catalog or environment kbmap never recorded is NotFound listing those
    it did; filter values are resolved by the domain's newest release (unknown: an error)."""
    if catalog and environment:
        raise InvalidInput(
            "give catalog or environment, not both: an environment's history already counts "
            "every catalog",
            Location(field="catalog"),
        )
    kind, name = ("catalog", catalog) if catalog else ("environment", environment)
    if name:
        key = f"{kind}:{name}"
        _known(session, kind, key, name)
        domain = domain or _domain_of(session, kind, name)
    else:
        domain = attack_service.get_release(session, domain=domain).domain
        key = f"all:{domain}"
    words = attack_service.vocabulary(
        session, release=attack_service.get_release(session, domain=domain)
    )
    return HistoryScope(
        scope=key,
        domain=domain,
        catalog=catalog,
        environment=environment,
        tactics=words.tactic_shortnames(split_values(tactics)),
        platforms=words.platform_names(split_values(platforms)),
    )


def _known(session: Session, kind: str, key: str, name: str) -> None:
    recorded = {s for (s,) in session.execute(_SCOPES) if s.startswith(f"{kind}:")}
    if key in recorded:
        return
    names = sorted(s.split(":", 1)[1] for s in recorded)
    raise NotFound(
        f"no history of {kind} {name!r}; {kind}s with history: {', '.join(names) or 'none'}",
        Location(field=kind),
    )


def _domain_of(session: Session, kind: str, name: str) -> str:
    """The domain of the scope's newest point."""
    where = CoverageSnapshot.catalog if kind == "catalog" else CoverageSnapshot.environment
    query = select(col(CoverageSnapshot.domain)).where(col(where) == name)
    row = session.execute(query.order_by(col(CoverageSnapshot.id).desc()).limit(1)).first()
    return str(row[0]) if row else "enterprise"


def recorded(session: Session, scope: HistoryScope) -> Recorded:
    """Plain rows through the session's connection: the ORM's row loading cost a year of points
    twice what the rest of a read does."""
    connection = session.connection()
    points = [
        Point(
            Cause(
                snapshot=r[0],
                at=r[1],
                cause=r[2],
                actor=r[3],
                audit_event=r[4],
                catalog=r[5],
                environment=r[6],
                release=r[7],
            ),
            r[8],
            r[9],
            r[10],
        )
        for r in connection.execute(_POINTS, {"scope": scope.scope})
    ]
    deltas: dict[int, list[Delta]] = defaultdict(list)
    for sid, technique, score, state, why in connection.execute(_DELTAS, {"scope": scope.scope}):
        deltas[sid].append(Delta(technique, (score, state) if score > 0 else None, why))
    return Recorded(scope, points, deltas)


class Filter:
    """Which techniques a point counts, and under which tactics, by the point's release."""

    def __init__(self, session: Session, scope: HistoryScope) -> None:
        self.session, self.scope = session, scope
        self.release = ""
        self.index: attack_service.TechniqueIndex | None = None
        self.tactics = set(scope.tactics)
        self.platforms = {p.lower() for p in scope.platforms}
        self.judged: dict[str, tuple[str, ...] | None] = {}

    def read_on(self, release: str) -> bool:
        """Switch to the point's release; True when it changed (counts must be redone)."""
        if release == self.release:
            return False
        self.release = release
        self.index = _index(self.session, release, self.scope.domain)
        self.judged = {}
        return True

    def tactics_of(self, technique: str) -> tuple[str, ...] | None:
        """The tactics a kept technique counts under (empty: kept, no tactic); None: left out.
        Judged once per technique and release (a year of points asks ~10,000 times)."""
        if technique not in self.judged:
            self.judged[technique] = self._judge(technique)
        return self.judged[technique]

    def _judge(self, technique: str) -> tuple[str, ...] | None:
        info = self.index.techniques.get(technique) if self.index else None
        if info is None:
            return None if (self.tactics or self.platforms) else ()
        if self.platforms and not self.platforms & {p.lower() for p in info.platforms}:
            return None
        if self.tactics and not self.tactics & set(info.tactics):
            return None
        return tuple(t for t in info.tactics if not self.tactics or t in self.tactics)

    def name_of(self, technique: str) -> str:
        info = self.index.techniques.get(technique) if self.index else None
        return info.name if info else ""


def _index(session: Session, release: str, domain: str) -> attack_service.TechniqueIndex:
    """The named release's index, else the domain's newest (a release since replaced)."""
    d, _, version = release.partition(" ")
    try:
        row = attack_service.get_release(session, domain=d or domain, version=version or None)
    except NotFound:
        row = attack_service.get_release(session, domain=domain)
    return attack_service.technique_index(session, release=row)


def since_position(points: list[Point], since: str | None, *, field: str = "since") -> int:
    """How many points come at or before `since` (a snapshot id, a date or a time); 0: none.
    `field`: the parameter an unknown snapshot is reported on."""
    if not since:
        return 0
    text = since.strip()
    if text.isdigit():
        ids = [p.cause.snapshot for p in points]
        if int(text) not in ids:
            raise NotFound(
                f"no snapshot {text} of this scope; its snapshots: {_ranges(ids) or 'none'}",
                Location(field=field),
            )
        return ids.index(int(text)) + 1
    moment = _moment(text)
    return sum(1 for p in points if aware(p.cause.at) < moment)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"since must be a snapshot id, a date (YYYY-MM-DD) or a time (ISO 8601), not {text!r}",
            Location(field="since"),
        ) from None
    return aware(moment)


def aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _ranges(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:20])
    return shown + (f" … {ids[-1]}" if len(ids) > 20 else "")
