"""Coverage and gap routes: summaries, per-technique rows, comparison, ranked gaps."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.core.deps import PageParams, SessionDep, SettingsDep
from app.core.pages import Page
from app.coverage import service as coverage_service
from app.coverage.deps import EnvironmentScopeDep, ScopeDep
from app.coverage.models import (
    CatalogComparison,
    CoverageSummary,
    DataComponentCount,
    DetectionStrategyCount,
    Gap,
    GroupCount,
    Onboarding,
    TechniqueCoverage,
)

router = APIRouter()
ListQuery = Annotated[list[str] | None, Query(max_length=50)]


@router.get("/coverage", tags=["coverage"])
def get_coverage(session: SessionDep, settings: SettingsDep, scope: ScopeDep) -> CoverageSummary:
    return coverage_service.summary(session, scope=scope, weights=settings.coverage)


@router.get("/coverage/techniques", tags=["coverage"])
def list_technique_coverage(
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    page: PageParams,
    sort: Literal["id", "score", "-score", "rules", "-rules", "uncovered"] = "id",
    covered: bool | None = None,
    min_score: Annotated[float | None, Query(ge=0, le=100)] = None,
) -> Page[TechniqueCoverage]:
    return coverage_service.technique_rows_page(
        session,
        scope=scope,
        weights=settings.coverage,
        sort=sort,
        covered=covered,
        min_score=min_score,
        limit=page[0],
        offset=page[1],
    )


@router.get("/coverage/tactics", tags=["coverage"])
def list_tactic_coverage(
    session: SessionDep, settings: SettingsDep, scope: ScopeDep
) -> list[GroupCount]:
    return coverage_service.summary(session, scope=scope, weights=settings.coverage).by_tactic


@router.get("/coverage/platforms", tags=["coverage"])
def list_platform_coverage(
    session: SessionDep, settings: SettingsDep, scope: ScopeDep
) -> list[GroupCount]:
    return coverage_service.summary(session, scope=scope, weights=settings.coverage).by_platform


@router.get("/coverage/data-components", tags=["coverage"])
def list_data_component_coverage(
    session: SessionDep, settings: SettingsDep, scope: ScopeDep
) -> list[DataComponentCount]:
    return coverage_service.by_data_component(session, scope=scope, weights=settings.coverage)


@router.get("/coverage/detection-strategies", tags=["coverage"])
def list_detection_strategy_coverage(
    session: SessionDep, settings: SettingsDep, scope: ScopeDep
) -> list[DetectionStrategyCount]:
    return coverage_service.by_detection_strategy(session, scope=scope, weights=settings.coverage)


@router.get("/coverage/compare", tags=["coverage"])
def compare_catalogs(
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    a: Annotated[list[str], Query(max_length=20, description="catalog(s) of side A")],
    b: Annotated[list[str], Query(max_length=20, description="catalog(s) of side B")],
) -> CatalogComparison:
    return coverage_service.compare_catalogs(
        session, scope=scope, a=a, b=b, weights=settings.coverage
    )


@router.get("/environments/{name}/next", tags=["environments"])
def collect_next(
    session: SessionDep, settings: SettingsDep, scope: EnvironmentScopeDep, page: PageParams
) -> Page[Onboarding]:
    """Log sources to collect next on this environment's systems, ranked by the techniques
    (× threat weight of groups=) and rules their onboarding makes effective."""
    return coverage_service.collect_next(
        session, scope=scope, weights=settings.coverage, limit=page[0], offset=page[1]
    )


@router.get("/gaps", tags=["gaps"])
def list_gaps(
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    page: PageParams,
    collected: Annotated[
        list[str] | None,
        Query(
            max_length=100, description="data components you collect (comma-separated or repeated)"
        ),
    ] = None,
    min_score: Annotated[float, Query(ge=0, le=100, description="weak below this score")] = 0.0,
) -> Page[Gap]:
    return coverage_service.gap_page(
        session,
        scope=scope,
        weights=settings.coverage,
        collected=collected,
        min_score=min_score,
        limit=page[0],
        offset=page[1],
    )
