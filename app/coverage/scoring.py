"""Pure coverage scoring: how much a set of rules covers one technique, on a 0-100 scale.

score = min(cap, Σ weight(rule)) / cap × 100, where
weight(rule) = 0 when the rule is disabled, else status weight × level weight.
A technique is *covered* when its score is above 0, *weak* when below the caller's threshold.
Weights and the cap come from settings (KBMAP_COVERAGE_…), so a team can say what counts.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.core.config import CoverageWeights


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


def percent(part: int, whole: int) -> float:
    """part / whole as a percentage, one decimal; 0 of nothing is 0."""
    return round(100 * part / whole, 1) if whole else 0.0
