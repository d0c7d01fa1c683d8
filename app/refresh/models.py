"""Response shapes of a release diff: what changed between two releases, what that does to catalogs.

API shapes only (the diff owns no tables). The release-level part (`ReleaseChanges` and its
lists) is the attack domain's; this module adds each catalog's impact. Objects are named by their
ATT&CK id and name; a STIX id never leaves the service, so a client can link every entry to the
technique page.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.attack.models import ReleaseChanges
from app.core.api_model import ApiModel
from app.coverage.models import Count

StaleStatus = Literal["revoked", "deprecated", "removed"]


class StaleMapping(ApiModel):
    """One rule mapping that the target release no longer supports as written or resolved."""

    rule_id: str
    rule_name: str
    written: str  # as the catalog wrote it
    technique: str | None  # as stored (resolved against the catalog's own release)
    stale_id: str  # the id that is revoked / deprecated / gone in the target release
    status: StaleStatus
    suggested: str | None  # end of the revoked-by chain, active in the target release
    chain: list[str]
    changed_in_this_diff: bool  # the id was active in the `from` release
    already_resolved: bool  # the stored technique already equals the suggestion


class TacticCoverage(ApiModel):
    """Covered techniques under one tactic, before (from release) and after (to release)."""

    tactic: str
    name: str
    before: Count | None
    after: Count | None


class CatalogImpact(ApiModel):
    catalog: str
    validated_against: str  # "<domain> <version>" of the catalog's last import or upgrade
    rules: int
    stale_rules: int
    stale_mappings: int
    with_suggestion: int
    without_suggestion: int
    stale: list[StaleMapping]
    coverage_before: Count
    coverage_after: Count
    by_tactic: list[TacticCoverage]


# What `/releases/diff` and `kbmap diff` return: the attack domain's changes (same fields, same
# order) and then each catalog's impact. No docstring: it would become the OpenAPI description.
class ReleaseDiff(ReleaseChanges):
    catalogs: list[CatalogImpact] = Field(default_factory=list)
