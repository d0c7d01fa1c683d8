"""The technique page's shapes: the seed's own view of one technique, with the rules covering it.

`Ref` and `RelatedRef` are ATT&CK's (attack), `RuleRef` the catalog's; the detection block's
shapes are the page's own (no other answer carries them).
"""

from __future__ import annotations

import pydantic

from app.attack.models import MutableElement, Ref, RelatedRef
from app.catalog.models import RuleRef
from app.core.api_model import ApiModel


class DataComponentLink(ApiModel):
    id: str | None
    name: str
    data_source: Ref | None = None
    description: str = ""


class LogSource(ApiModel):
    data_component: Ref | None
    name: str
    channel: str


class AnalyticRead(ApiModel):
    id: str | None
    name: str
    platforms: list[str]
    description: str
    log_sources: list[LogSource]
    mutable_elements: list[MutableElement] = pydantic.Field(default_factory=list)


class DetectionStrategyRead(ApiModel):
    id: str | None
    name: str
    analytics: list[AnalyticRead]


class TechniquePage(ApiModel):
    """Everything the seed page shows for one technique, from one release."""

    id: str
    name: str
    description: str
    url: str | None
    domain: str
    version: str
    revoked: bool
    deprecated: bool
    revoked_by: Ref | None
    tactics: list[str]
    platforms: list[str]
    is_subtechnique: bool
    parent: Ref | None
    subtechniques: list[Ref]
    detection: str
    data_sources: list[str]
    mitigations: list[RelatedRef]
    data_components: list[DataComponentLink]
    detection_strategies: list[DetectionStrategyRead]
    groups: list[Ref]
    software: list[Ref]
    campaigns: list[Ref]
    rules: list[RuleRef] = pydantic.Field(default_factory=list)
    subtechnique_rules: list[RuleRef] = pydantic.Field(default_factory=list)
