"""Catalog API shapes: rules, mappings and catalogs as routes return them (tables: `tables.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.core.api_model import ApiModel

# How a mapping ended after validation against a release.
OUTCOMES = ("ok", "remapped", "deprecated", "unknown", "wrong_domain", "unparsable")


class MappingRead(ApiModel):
    written: str
    technique: str | None
    tactic: str | None
    outcome: str
    tactic_ok: bool
    note: str
    original: str | None = None


class RuleRead(ApiModel):
    catalog: str
    rule_id: str
    name: str
    title: str
    description: str
    package: str | None
    severity: str | None
    status: str | None
    enabled: bool
    platforms: list[str]
    references: list[str]
    log_sources: list[dict[str, str]]
    data_components: list[str]
    analytics: list[str]
    path: str | None
    raw_tags: list[str]
    tactics: list[str]
    mappings: list[MappingRead]


class ReleaseFallback(ApiModel):
    """The catalog's stated release was not loaded; it was validated against another."""

    declared: str  # "enterprise 17.1"
    validated_against: str  # "enterprise 18.1", the newest loaded release of that domain


class CatalogRead(ApiModel):
    name: str
    format_id: str
    vendor: str | None
    product: str | None
    version: str | None
    stated_release: str | None
    domain: str
    attack_version: str
    source: str
    imported_at: datetime
    rule_count: int
    release_fallback: ReleaseFallback | None = None
    report: dict[str, Any]
