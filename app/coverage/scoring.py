"""Pure coverage scoring: how much a set of rules covers one technique, on a 0-100 scale.

score = min(cap, Σ weight(rule)) / cap × 100, where
weight(rule) = 0 when the rule is disabled, else status weight × level weight.
A technique is *covered* when its score is above 0, *weak* when below the caller's threshold.
Weights and the cap come from settings (KBMAP_COVERAGE_…), so a team can say what counts.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CoverageWeights(BaseSettings):
    """Documented in the README; override with KBMAP_COVERAGE_STATUS / _LEVEL / _CAP (JSON)."""

    model_config = SettingsConfigDict(env_prefix="KBMAP_COVERAGE_", extra="ignore")

    status: dict[str, float] = Field(
        default_factory=lambda: {
            "stable": 1.0,
            "production": 1.0,
            "test": 0.8,
            "experimental": 0.6,
            "development": 0.6,
            "deprecated": 0.0,
            "unsupported": 0.0,
        }
    )
    level: dict[str, float] = Field(
        default_factory=lambda: {
            "critical": 1.0,
            "high": 1.0,
            "medium": 0.8,
            "low": 0.6,
            "informational": 0.3,
        }
    )
    unknown_status: float = 1.0
    unknown_level: float = 0.8
    cap: float = 3.0


def rule_weight(
    *, enabled: bool, status: str | None, level: str | None, w: CoverageWeights
) -> float:
    if not enabled:
        return 0.0
    s = w.status.get((status or "").lower(), w.unknown_status) if status else w.unknown_status
    lv = w.level.get((level or "").lower(), w.unknown_level) if level else w.unknown_level
    return s * lv


def score(weights: Iterable[float], w: CoverageWeights) -> float:
    total = sum(weights)
    if total <= 0:
        return 0.0
    return round(min(w.cap, total) / w.cap * 100, 1)
