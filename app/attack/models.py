"""ATT&CK API shapes: what routes return and other domains receive (the tables are in
`tables.py`, which no other domain imports at run time)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import pydantic

from app.core.api_model import ApiModel


class Ref(ApiModel):
    """An ATT&CK object named by its ATT&CK id (null for 17.x data components) and name."""

    id: str | None
    name: str


class RelatedRef(Ref):
    """A related object with the relationship's own (technique-specific) text."""

    description: str = ""


class ReleaseRead(ApiModel):
    domain: str
    version: str
    stix_version: str
    detection_model: str
    object_count: int
    technique_count: int
    is_default: bool
    loaded_at: datetime
    source: str
    sha256: str


class MutableElement(ApiModel):
    """A part of an analytic a defender is expected to tune (ATT&CK 18+)."""

    field: str
    description: str = ""


class TechniqueRead(ApiModel):
    id: str
    name: str
    tactics: list[str]
    platforms: list[str]
    is_subtechnique: bool
    revoked: bool
    deprecated: bool
    url: str | None


class TacticRead(ApiModel):
    id: str | None
    name: str
    shortname: str
    description: str
    order: int


class ObjectSummary(ApiModel):
    """One row of a list of mitigations, groups, software, campaigns, ... (`list_objects`)."""

    id: str | None
    name: str
    description: str
    url: str | None
    platforms: list[str]
    revoked: bool
    deprecated: bool


class LogSourceReference(ApiModel):
    """An 18+ analytic's log source as MITRE writes it (the component by STIX id)."""

    x_mitre_data_component_ref: str = ""
    name: str = ""
    channel: str = ""


class NamedLogSource(ApiModel):
    """An 18+ data component's log source."""

    name: str = ""
    channel: str = ""


class RelatedAsset(ApiModel):
    """An ICS asset's related asset."""

    name: str
    related_asset_sectors: list[str] = pydantic.Field(default_factory=list)
    description: str = ""


def _present() -> Any:
    """A field left out of the response when the object lacks it (not sent as null)."""
    return pydantic.Field(default=None, exclude_if=lambda v: v is None)


class ObjectAttributes(ApiModel):
    """The STIX properties of an object beyond its core fields, named without `x_mitre_`: every
    property ATT&CK 16-18 objects of these kinds carry, each present only when the object has
    it (as MITRE writes them)."""

    aliases: list[str] | None = _present()
    software_type: str | None = _present()  # malware | tool
    is_family: bool | None = _present()
    labels: list[str] | None = _present()
    first_seen: str | None = _present()
    last_seen: str | None = _present()
    first_seen_citation: str | None = _present()
    last_seen_citation: str | None = _present()
    contributors: list[str] | None = _present()
    domains: list[str] | None = _present()
    version: str | None = _present()
    collection_layers: list[str] | None = _present()
    data_source_ref: str | None = _present()
    log_sources: list[NamedLogSource] | None = _present()
    log_source_references: list[LogSourceReference] | None = _present()
    mutable_elements: list[MutableElement] | None = _present()
    sectors: list[str] | None = _present()
    related_assets: list[RelatedAsset] | None = _present()


class ObjectRead(ApiModel):
    """Any other ATT&CK object: its core fields plus the objects it relates to."""

    id: str | None
    kind: str
    name: str
    description: str
    url: str | None
    revoked: bool
    deprecated: bool
    platforms: list[str]
    attributes: ObjectAttributes
    related: dict[str, list[RelatedRef]]


# ---- a release diff: what changed between two releases of one domain -------------------------
# Returned by `diff.py`; the refresh domain adds each catalog's impact.
# Objects are named by ATT&CK id and name; a STIX id never leaves the service, so a client can
# link every entry to the technique page.


class ObjectRef(ApiModel):
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


class Renamed(ApiModel):
    id: str
    old_name: str
    new_name: str


class SetChange(ObjectRef):
    """Tactics or platforms of one technique: what the target release added and removed."""

    added: list[str]
    removed: list[str]


SubtechniqueChangeKind = Literal["became_subtechnique", "ceased_subtechnique", "parent_changed"]


class SubtechniqueChange(ObjectRef):
    change: SubtechniqueChangeKind
    old_parent: str | None
    new_parent: str | None


class DescriptionChange(ObjectRef):
    """Flag only; `old`/`new` carry the full texts when the caller asked for them."""

    old: str | None = None
    new: str | None = None


class TechniqueChanges(ApiModel):
    """Every list is sorted by technique id. Changes (renamed … description) are reported for
    techniques active in both releases; revoked and deprecated ones have their own lists."""

    added: list[ObjectRef] = pydantic.Field(default_factory=list)
    # active again: the same STIX object was deprecated or revoked in the older release
    reinstated: list[ObjectRef] = pydantic.Field(default_factory=list)
    revoked: list[RevokedTechnique] = pydantic.Field(default_factory=list)
    deprecated: list[ObjectRef] = pydantic.Field(default_factory=list)
    renamed: list[Renamed] = pydantic.Field(default_factory=list)
    tactics_changed: list[SetChange] = pydantic.Field(default_factory=list)
    platforms_changed: list[SetChange] = pydantic.Field(default_factory=list)
    subtechnique_changed: list[SubtechniqueChange] = pydantic.Field(default_factory=list)
    description_changed: list[DescriptionChange] = pydantic.Field(default_factory=list)


class TacticChanges(ApiModel):
    added: list[TacticRef] = pydantic.Field(default_factory=list)
    retired: list[TacticRef] = pydantic.Field(
        default_factory=list
    )  # live before, deprecated / revoked / gone after
    order_before: list[str] = pydantic.Field(default_factory=list)  # shortnames in matrix order
    order_after: list[str] = pydantic.Field(default_factory=list)


class ObjectChanges(ApiModel):
    """Objects of one kind that became live (added) or stopped being live (removed)."""

    added: list[ObjectRef] = pydantic.Field(default_factory=list)
    removed: list[ObjectRef] = pydantic.Field(default_factory=list)


class ReleaseChanges(ApiModel):
    """What changed from one release of a domain to another (`diff.diff_releases`)."""

    domain: str
    from_version: str
    to_version: str
    detection_model_before: str
    detection_model_after: str
    counts: dict[str, int] = pydantic.Field(
        description="one number per list below, e.g. techniques_added"
    )
    techniques: TechniqueChanges
    tactics: TacticChanges
    objects: dict[str, ObjectChanges] = pydantic.Field(
        description="mitigation, data_source, data_component, detection_strategy, analytic"
    )
