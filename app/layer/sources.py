"""What a layer kind may read, bound to one session: every read goes through another domain's
service façade, and the two slow ones are cached under explicit keys.

Rule notes (the covering rules of each technique, as layer metadata and links) are cached per
release load, catalog revision and base URL; release diffs per pair of release loads. After a
warm-up a layer is in-memory work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.models import ReleaseChanges
from app.catalog import service as catalog_service
from app.core.cache import CacheSpec, caches_of
from app.core.config import CoverageWeights
from app.core.errors import InvalidInput, Location
from app.coverage import service as coverage_service
from app.coverage.models import CatalogComparison, Gap, TechniqueCoverage
from app.coverage.service import ReleaseFacts, Scope
from app.history import service as history_service
from app.history.models import Cause, HistoryScope
from app.layer.entries import RuleLine, RuleNotes, TechniqueState, rule_notes

if TYPE_CHECKING:
    from app.attack.tables import Release

RULE_NOTES: CacheSpec[dict[str, RuleNotes]] = CacheSpec("layer.rule_notes", size=16)
RELEASE_CHANGES: CacheSpec[ReleaseChanges] = CacheSpec("layer.release_changes", size=16)


@dataclass(frozen=True)
class Sources:
    """The reads of one layer call: a session, the coverage weights, where links point."""

    session: Session
    weights: CoverageWeights
    base_url: str

    def technique_rows(self, scope: Scope) -> list[TechniqueCoverage]:
        """The rows `/coverage/techniques` serves for the same scope."""
        return coverage_service.technique_rows(self.session, scope=scope, weights=self.weights)

    def facts(self, release: Release) -> ReleaseFacts:
        return coverage_service.release_facts(self.session, release=release)

    def gaps(self, scope: Scope, *, collected: list[str], min_score: float) -> list[Gap]:
        return coverage_service.gaps(
            self.session,
            scope=scope,
            weights=self.weights,
            collected=collected,
            min_score=min_score,
        )

    def compare(self, scope: Scope, *, a: list[str], b: list[str]) -> CatalogComparison:
        return coverage_service.compare_catalogs(
            self.session, scope=scope, a=a, b=b, weights=self.weights
        )

    def release(self, domain: str, version: str) -> Release:
        return attack_service.get_release(self.session, domain=domain, version=version)

    def versions(self, domain: str) -> list[str]:
        """Loaded release versions of the domain, oldest first."""
        return [r.version for r in attack_service.list_releases(self.session) if r.domain == domain]

    def techniques(self, release: Release) -> Mapping[str, TechniqueState]:
        """The release's techniques as the release diff compares them."""
        return attack_service.release_view(self.session, release=release).techniques

    def release_changes(self, old: Release, new: Release) -> ReleaseChanges:
        """The attack service's release diff (what `/releases/diff` serves): a split layer asks
        once per platform, and the diff layer only reads it."""
        key = (attack_service.release_key(old), attack_service.release_key(new))
        return (
            caches_of(self.session)
            .get(RELEASE_CHANGES)
            .get_or_make(key, lambda: attack_service.diff_releases(self.session, old=old, new=new))
        )

    def rule_notes(self, scope: Scope) -> dict[str, RuleNotes]:
        """Covering rules per technique for the scope's catalogs, as layer metadata and links
        (rule lists are the slow part of a layer)."""
        key = (
            attack_service.release_key(scope.release),
            tuple(catalog_service.catalog_key(c) for c in scope.catalogs),
            self.base_url,
        )
        return (
            caches_of(self.session)
            .get(RULE_NOTES)
            .get_or_make(key, lambda: self._rule_notes(scope))
        )

    def _rule_notes(self, scope: Scope) -> dict[str, RuleNotes]:
        if not scope.catalogs:
            return {}
        found = catalog_service.rules_for_techniques(
            self.session,
            techniques=self.facts(scope.release).index.active_ids(),
            names={c.id or 0: c.name for c in scope.catalogs},
        )
        return {
            tid: rule_notes(
                [
                    RuleLine(r.catalog, r.rule_id, r.title or r.name or r.rule_id, r.enabled)
                    for r in refs
                ],
                base_url=self.base_url,
            )
            for tid, refs in found.items()
        }

    # ---- the coverage history (the delta layer) ----------------------------------------------

    def history_scope(self, scope: Scope) -> HistoryScope:
        """The history a layer scope follows: its environment's, its one named catalog's, else
        every catalog's in its domain (naming the only catalog there is reads the domain's: the
        scope cannot tell the two apart, and they hold the same catalogs)."""
        named = [c.name for c in scope.catalogs]
        every = catalog_service.catalog_ids(self.session, None)
        if 1 < len(named) < len(every):
            raise InvalidInput(
                "a history follows one catalog or every catalog: name one catalog or none",
                Location(field="catalog"),
            )
        return history_service.resolve_scope(
            self.session,
            catalog=named[0] if len(named) == 1 < len(every) else None,
            environment=scope.environment.telemetry.name if scope.environment else None,
            domain=scope.release.domain,
        )

    def history_state(
        self, scope: HistoryScope, snapshot: int | None, *, field: str
    ) -> dict[str, tuple[float, str | None]]:
        """Each covered technique's (score, state) just after `snapshot` (None: now); a snapshot
        that is not a point of the scope is NotFound on `field`, listing its points."""
        return history_service.state_at(self.session, scope=scope, snapshot=snapshot, field=field)

    def history_points(self, scope: HistoryScope) -> list[Cause]:
        """The scope's points, oldest first."""
        found = history_service.coverage_history(self.session, scope=scope)
        return [p.cause for p in found.points]

    def history_reasons(self, scope: HistoryScope, *, after: int) -> list[tuple[int, str, str]]:
        """(snapshot, technique, reason) of every change after snapshot `after`, in order."""
        found = history_service.coverage_changes(
            self.session, scope=scope, since=str(after), limit=1_000_000
        )
        return [(c.cause.snapshot, c.technique, c.reason) for c in found.items]
