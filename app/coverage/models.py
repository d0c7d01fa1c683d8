"""Coverage response shapes (this domain owns no tables)."""

from __future__ import annotations

from pydantic import Field

from app.core.api_model import ApiModel


class TechniqueCoverage(ApiModel):
    id: str
    name: str
    tactics: list[str]
    platforms: list[str]
    is_subtechnique: bool
    parent: str | None
    rules: int  # distinct rules mapped to exactly this technique
    remapped_rules: int  # of which reached it through a revoked id
    score: float  # from its own rules only (0-100)
    covered: bool
    catalogs: list[str]
    subtechniques_total: int
    subtechniques_covered: int
    rolled_up_rules: int  # its own rules plus its sub-techniques' rules
    rolled_up_score: float
    rolled_up_covered: bool
    tactic_scores: dict[str, float]  # per tactic when pinned mappings make them differ


class Count(ApiModel):
    total: int
    covered: int = Field(description="techniques whose score is above 0")
    percent: float


class GroupCount(Count):
    key: str
    name: str


class CatalogCount(ApiModel):
    catalog: str
    rules: int
    rules_mapped: int = Field(
        description="rules with a technique mapped to a live one of the release (ok or "
        "remapped); the import report's rules_mapped"
    )
    techniques_covered: int = Field(
        description="techniques in scope whose score from this catalog is above 0 (deprecated "
        "and unsupported rules score 0, so this can be below the import report's "
        "techniques_mapped)"
    )
    percent: float


class DataComponentCount(ApiModel):
    id: str | None
    name: str
    techniques: int  # techniques in scope this component can detect
    covered: int
    uncovered: int
    uncovered_techniques: list[str]


class DetectionStrategyCount(ApiModel):
    id: str | None
    name: str
    techniques: list[str]
    covered: bool


class CoverageSummary(ApiModel):
    domain: str
    version: str
    catalogs: list[str]
    filters: dict[str, list[str]]
    techniques: Count  # techniques that are not sub-techniques
    subtechniques: Count
    all: Count
    by_tactic: list[GroupCount]
    by_platform: list[GroupCount]
    by_catalog: list[CatalogCount]


class CompareRow(ApiModel):
    tactic: str
    both: int
    only_a: int
    only_b: int
    neither: int


class CatalogComparison(ApiModel):
    domain: str
    version: str
    a: list[str]
    b: list[str]
    both: list[str]
    only_a: list[str]
    only_b: list[str]
    neither: list[str]
    by_tactic: list[CompareRow]


class PriorityParts(ApiModel):
    threat_uses: int
    threat: float
    platform_span: int
    platforms: float
    telemetry: str  # cheap | blind | unknown
    telemetry_bonus: float
    weakness: float  # 1 for uncovered, lower for weakly covered


class Gap(ApiModel):
    id: str
    name: str
    tactics: list[str]
    platforms: list[str]
    score: float
    priority: float
    parts: PriorityParts
    groups: list[str]
    software: list[str]
    campaigns: list[str]
    data_components: list[str]
    collected_data_components: list[str]
    detection_strategies: list[str]
    analytics: list[str]
    mitigations: list[dict[str, str]]
