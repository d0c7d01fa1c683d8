"""Response shapes of a release diff: what changed between two releases, what that does to catalogs.

Plain pydantic models (the diff owns no tables). Objects are named by their ATT&CK id and name; a
STIX id never leaves the service, so a client can link every entry to the technique page.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.coverage.models import Count


class ObjectRef(BaseModel):
    """An ATT&CK object by id and name (the id is null for kinds MITRE gives none, e.g. 17.x
    data components)."""

    id: str | None
    name: str


class TacticRef(ObjectRef):
    shortname: str


class RevokedTechnique(ObjectRef):
    """A technique revoked in the target release; `replacement` is the active end of its
    revoked-by chain (None when the chain ends at a revoked or deprecated technique)."""

    revoked_by: str | None
    replacement: str | None
    replacement_name: str | None
    chain: list[str]


class Renamed(BaseModel):
    id: str
    old_name: str
    new_name: str


class SetChange(ObjectRef):
    """Tactics or platforms of one technique: what the target release added and removed."""

    added: list[str]
    removed: list[str]


SubtechniqueChangeKind = Literal["became_subtechnique", "ceased_subtechnique", "parent_changed"]
StaleStatus = Literal["revoked", "deprecated", "removed"]


class SubtechniqueChange(ObjectRef):
    change: SubtechniqueChangeKind
    old_parent: str | None
    new_parent: str | None


class DescriptionChange(ObjectRef):
    """Flag only; `old`/`new` carry the full texts when the caller asked for them."""

    old: str | None = None
    new: str | None = None


class TechniqueChanges(BaseModel):
    """Every list is sorted by technique id. Changes (renamed … description) are reported for
    techniques active in both releases; revoked and deprecated ones have their own lists."""

    added: list[ObjectRef] = []
    revoked: list[RevokedTechnique] = []
    deprecated: list[ObjectRef] = []
    renamed: list[Renamed] = []
    tactics_changed: list[SetChange] = []
    platforms_changed: list[SetChange] = []
    subtechnique_changed: list[SubtechniqueChange] = []
    description_changed: list[DescriptionChange] = []


class TacticChanges(BaseModel):
    added: list[TacticRef] = []
    retired: list[TacticRef] = []  # live before, deprecated / revoked / gone after
    order_before: list[str] = []  # shortnames in matrix order
    order_after: list[str] = []


class ObjectChanges(BaseModel):
    """Objects of one kind that became live (added) or stopped being live (removed)."""

    added: list[ObjectRef] = []
    removed: list[ObjectRef] = []


class StaleMapping(BaseModel):
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


class TacticCoverage(BaseModel):
    """Covered techniques under one tactic, before (from release) and after (to release)."""

    tactic: str
    name: str
    before: Count | None
    after: Count | None


class CatalogImpact(BaseModel):
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


class ReleaseDiff(BaseModel):
    domain: str
    from_version: str
    to_version: str
    detection_model_before: str
    detection_model_after: str
    counts: dict[str, int] = Field(description="one number per list below, e.g. techniques_added")
    techniques: TechniqueChanges
    tactics: TacticChanges
    objects: dict[str, ObjectChanges] = Field(
        description="mitigation, data_source, data_component, detection_strategy, analytic"
    )
    catalogs: list[CatalogImpact] = []
