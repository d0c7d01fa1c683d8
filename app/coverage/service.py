"""Coverage and gaps, the facade other domains call: per-technique scores, summaries, catalog
comparison, gap ranking.

facts.py reads what a release and a catalog give coverage (cached under explicit keys);
scope.py resolves the question; techniques.py scores each technique; summary.py and gaps.py answer;
effective.py judges techniques in an environment, states.py sums them, onboarding.py ranks what
to collect next.
"""

from __future__ import annotations

from app.coverage.effective import STATES
from app.coverage.facts import (
    CatalogWeights,
    ReleaseFacts,
    TechniqueRules,
    catalog_mappings,
    release_facts,
)
from app.coverage.firing import Firing, rule_firing
from app.coverage.gaps import gap_page, gaps, with_mitigations
from app.coverage.onboarding import collect_next
from app.coverage.rule_places import RulePlace, rule_places
from app.coverage.scope import EnvironmentScope, Scope, make_scope, split_values
from app.coverage.scoring import rule_weight, score
from app.coverage.summary import (
    by_data_component,
    by_detection_strategy,
    compare,
    compare_catalogs,
    summary,
)
from app.coverage.techniques import covered_scores, technique_rows, technique_rows_page

__all__ = [
    "STATES",
    "CatalogWeights",
    "EnvironmentScope",
    "Firing",
    "ReleaseFacts",
    "RulePlace",
    "Scope",
    "TechniqueRules",
    "by_data_component",
    "by_detection_strategy",
    "catalog_mappings",
    "collect_next",
    "compare",
    "compare_catalogs",
    "covered_scores",
    "gap_page",
    "gaps",
    "make_scope",
    "release_facts",
    "rule_firing",
    "rule_places",
    "rule_weight",
    "score",
    "split_values",
    "summary",
    "technique_rows",
    "technique_rows_page",
    "with_mitigations",
]
