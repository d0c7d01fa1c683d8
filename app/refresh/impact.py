"""What a new release means for the catalogs: the attack service's diff of two releases, plus
each catalog's impact.

Read-only (no transaction needed): what changed between the releases is
`attack_service.diff_releases` (the one release diff); this module loads the catalogs' mappings
for `stale.stale_mappings` and asks the coverage service for each catalog's covered counts on both
releases, so "coverage before vs after" is the same number `kbmap coverage --version X` prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.service import ReleaseView
from app.catalog import service as catalog_service
from app.catalog.validate import fold_technique
from app.core.config import CoverageWeights
from app.coverage import service as coverage_service
from app.coverage.models import Count, CoverageSummary, GroupCount
from app.refresh.models import CatalogImpact, ReleaseDiff, TacticCoverage
from app.refresh.stale import MappingRow, stale_mappings

if TYPE_CHECKING:  # row types for annotations only: the reads go through the services
    from app.attack.tables import Release
    from app.catalog.tables import Catalog


def release_diff(
    session: Session,
    *,
    domain: str,
    from_version: str,
    to_version: str,
    catalogs: Sequence[str] | None = None,
    with_text: bool = False,
    weights: CoverageWeights | None = None,
) -> ReleaseDiff:
    """What changed from one release to another, and the impact on catalogs.

    `catalogs=None` means every catalog validated against this domain; named catalogs are taken
    as named (NotFound for unknown names). `weights` should be `settings.coverage`; without it the
    code defaults apply (environment overrides are read only where settings are built).
    """
    before = attack_service.get_release(session, domain=domain, version=from_version)
    after = attack_service.get_release(session, domain=domain, version=to_version)
    changes = attack_service.diff_releases(session, old=before, new=after, with_text=with_text)
    result = ReleaseDiff(**dict(changes))
    bv = attack_service.release_view(session, release=before)
    av = attack_service.release_view(session, release=after)
    w = weights if weights is not None else CoverageWeights.model_construct()
    for cat in _catalogs(session, names=catalogs, domain=before.domain):
        result.catalogs.append(
            catalog_impact(session, catalog=cat, before=before, after=after, views=(bv, av), w=w)
        )
    return result


def _catalogs(session: Session, *, names: Sequence[str] | None, domain: str) -> list[Catalog]:
    """The named catalogs, or every catalog validated against the domain; sorted by name."""
    rows = catalog_service.catalogs_by_id(session, catalog_service.catalog_ids(session, names))
    return rows if names else [c for c in rows if c.domain == domain]


def mapping_rows(session: Session, *, catalog: Catalog) -> list[MappingRow]:
    """The catalog's mappings with the written text folded to an id, for `stale_mappings`."""
    return [
        MappingRow(
            rule_id=m.rule_id,
            rule_name=m.rule_name or m.rule_title,
            written=m.written,
            written_id=fold_technique(m.written)[0],
            technique=m.technique,
        )
        for m in catalog_service.written_mappings(session, catalog_id=catalog.id or 0)
    ]


def catalog_impact(
    session: Session,
    *,
    catalog: Catalog,
    before: Release,
    after: Release,
    views: tuple[ReleaseView, ReleaseView],
    w: CoverageWeights,
) -> CatalogImpact:
    stale = stale_mappings(mapping_rows(session, catalog=catalog), *views)
    cov_before = _summary(session, release=before, catalog=catalog.name, w=w)
    cov_after = _summary(session, release=after, catalog=catalog.name, w=w)
    return CatalogImpact(
        catalog=catalog.name,
        validated_against=f"{catalog.domain} {catalog.attack_version}",
        rules=catalog.rule_count,
        stale_rules=len({s.rule_id for s in stale}),
        stale_mappings=len(stale),
        with_suggestion=sum(1 for s in stale if s.suggested),
        without_suggestion=sum(1 for s in stale if not s.suggested),
        stale=stale,
        coverage_before=cov_before.all,
        coverage_after=cov_after.all,
        by_tactic=_by_tactic(cov_before, cov_after),
    )


def _summary(
    session: Session, *, release: Release, catalog: str, w: CoverageWeights
) -> CoverageSummary:
    scope = coverage_service.make_scope(session, release=release, catalogs=[catalog])
    return coverage_service.summary(session, scope=scope, weights=w)


def _by_tactic(before: CoverageSummary, after: CoverageSummary) -> list[TacticCoverage]:
    """Tactics of both releases: the `before` order, with new tactics placed after the tactic
    that precedes them in the `after` matrix (so a split tactic's heirs sit beside it)."""
    b = {g.key: g for g in before.by_tactic}
    a = {g.key: g for g in after.by_tactic}
    order = list(b)
    after_order = list(a)
    for i, key in enumerate(after_order):
        if key in order:
            continue
        prev = after_order[i - 1] if i else None
        order.insert(order.index(prev) + 1 if prev in order else len(order), key)
    out = []
    for key in order:
        g = a.get(key) or b[key]
        out.append(
            TacticCoverage(
                tactic=key,
                name=g.name,
                before=_count(b.get(key)),
                after=_count(a.get(key)),
            )
        )
    return out


def _count(g: GroupCount | None) -> Count | None:
    return None if g is None else Count(total=g.total, covered=g.covered, percent=g.percent)
