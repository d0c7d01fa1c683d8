"""Coverage response shapes (this domain owns no tables)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.core.api_model import ApiModel

EffectiveState = Literal[
    "effective", "rule_without_telemetry", "telemetry_only", "blind", "unknown"
]


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
    # with an environment (`environment=`), else None:
    state: EffectiveState | None = Field(
        default=None,
        description="with environment=: effective, rule_without_telemetry, telemetry_only, "
        "blind or unknown",
    )
    effective_score: float | None = Field(
        default=None, description="the score of the rules that can fire, × data quality"
    )
    effective_rules: int | None = Field(default=None, description="its rules that can fire")
    unknown_rules: int | None = Field(
        default=None, description="its rules whose log sources kbmap cannot place"
    )
    missing_log_sources: list[str] | None = Field(
        default=None,
        description="data components its rules need and no system of their platforms collects",
    )
    systems: list[str] | None = Field(
        default=None, description="systems whose telemetry lets one of its rules fire"
    )
    effective_catalogs: list[str] | None = Field(
        default=None, description="catalogs with one of its rules that can fire"
    )
    visible_data_components: list[str] | None = Field(
        default=None,
        description="data components that can detect it, collected on a system of its platforms",
    )
    detectable_by: int | None = Field(
        default=None, description="data components that can detect it (≤17 detects, 18+ analytics)"
    )


class Count(ApiModel):
    total: int
    covered: int = Field(description="techniques whose score is above 0")
    percent: float


class GroupCount(Count):
    key: str
    name: str
    effective: int | None = Field(
        default=None, description="with environment=: techniques whose state is effective"
    )


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
    collected_on: list[str] | None = Field(
        default=None, description="with environment=: the systems that collect it"
    )


class DetectionStrategyCount(ApiModel):
    id: str | None
    name: str
    techniques: list[str]
    covered: bool
    effective: bool | None = Field(
        default=None, description="with environment=: one of its techniques is effective"
    )


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
    effective: EffectiveSummary | None = Field(
        default=None, description="with environment=: the same techniques by effective state"
    )


class CompareRow(ApiModel):
    tactic: str
    both: int
    only_a: int
    only_b: int
    neither: int


class CatalogComparison(ApiModel):
    """With environment=, a side covers a technique only where one of its rules can fire."""

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
    telemetry: str = Field(
        description="cheap (telemetry collected, no rule) | blind | unknown (nothing said of "
        "what is collected); with environment= also rule_without_telemetry, effective (weak), "
        "and unknown means rules whose log sources kbmap cannot place"
    )
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
    state: EffectiveState | None = Field(default=None, description="with environment=")
    missing_log_sources: list[str] | None = Field(default=None, description="with environment=")


class StateCount(ApiModel):
    """Techniques in each effective-coverage state, for one group of them."""

    key: str
    name: str
    total: int
    effective: int
    rule_without_telemetry: int
    telemetry_only: int
    blind: int
    unknown: int
    percent: float = Field(description="effective / total × 100")


class SystemCount(ApiModel):
    name: str
    platforms: list[str]
    data_components: int = Field(description="data components it collects (counted ones)")
    total: int = Field(description="techniques in scope on its platforms")
    effective: int = Field(description="techniques one of whose rules fires on its telemetry")
    visible: int = Field(
        description="techniques a data component it collects can detect (on its platforms)"
    )
    percent: float = Field(description="effective / total × 100")


class CatalogEffect(ApiModel):
    catalog: str
    rules_firing: int = Field(description="rules of the catalog that can fire here")
    rules_without_telemetry: int = Field(description="placed rules no system lets fire")
    rules_unknown: int = Field(description="rules whose log sources kbmap cannot place")
    techniques_effective: int = Field(
        description="techniques in scope one of its rules makes effective"
    )
    percent: float


class EffectiveSummary(ApiModel):
    """Coverage with the telemetry an environment collects (`environment=`)."""

    environment: str
    all: StateCount
    techniques: StateCount  # not sub-techniques
    subtechniques: StateCount
    by_tactic: list[StateCount]
    by_platform: list[StateCount]
    by_system: list[SystemCount]
    by_catalog: list[CatalogEffect]


class Onboarding(ApiModel):
    """A log source to collect next: one data component on one system, and what it unlocks."""

    rank: int
    system: str
    data_component: str
    data_component_id: str | None
    techniques_gained: int = Field(
        description="techniques in scope that become effective: exactly what recomputing "
        "after onboarding it adds"
    )
    value: float = Field(
        description="Σ threat weight of those techniques (1 each; with groups=, the named "
        "groups, software and campaigns using it)"
    )
    rules_unlocked: int = Field(description="rules that fire nowhere today and would")
    techniques: list[str]
    rules: list[str] = Field(description="up to 100 of the rules unlocked, as catalog/rule id")
