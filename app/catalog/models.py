"""Catalog API shapes: rules, mappings, catalogs and their import report (tables: `tables.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

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


class RuleRef(ApiModel):
    """A detection rule covering a technique (filled by the catalog domain)."""

    catalog: str
    rule_id: str
    name: str
    title: str = ""
    package: str | None = None
    enabled: bool = True
    mapped_as: str  # the technique id as written in the catalog
    how: str  # direct | remapped
    technique: str
    # with an environment (`environment=`): can it fire there, on which systems, else why not
    fires: bool | None = None
    systems: list[str] | None = None
    why_not: str | None = None


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


class RuleFull(RuleRead):
    """One rule as `GET /rules/{catalog}/{rule_id}` answers it: the list's fields plus the rule in
    its own language (`body`: the Sigma file, the SPL search, the KQL query, XP's `rule.co`; null
    where the format carries none) and the format's own fields that have no column (`extra`).
    Lists leave both out: a page of bodies would be megabytes."""

    body: str | None
    extra: dict[str, Any]


class ReleaseFallback(ApiModel):
    """The catalog's stated release was not loaded; it was validated against another."""

    declared: str  # "enterprise 17.1"
    validated_against: str  # "enterprise 18.1", the newest loaded release of that domain


def _absent(value: Any) -> bool:
    """A key older reports lack (or an import has not yet made): left out, not written as null."""
    return value is None


class OutcomeCounts(ApiModel):
    """Mappings per outcome (`OUTCOMES`, in that order)."""

    ok: int = 0
    remapped: int = 0
    deprecated: int = 0
    unknown: int = 0
    wrong_domain: int = 0
    unparsable: int = 0


class MappingExample(ApiModel):
    rule_id: str
    written: str
    technique: str | None
    note: str


class TacticMismatchExample(ApiModel):
    rule_id: str
    written: str
    note: str


class IssueLocation(ApiModel):
    """Where a warning sits (`core.errors.Location`): any part may be unknown."""

    file: str | None = None
    line: int | None = None
    field: str | None = None


class ImportWarning(ApiModel):
    """A parser's warning (`core.errors.Issue.as_dict`); the first 50 are kept."""

    message: str
    severity: str
    location: IssueLocation | None = None


class UpgradeRecord(ApiModel):
    """One `catalog upgrade` of the catalog, oldest first."""

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    from_: str = Field(alias="from")  # "enterprise 16.1"
    to: str
    at: str  # ISO 8601, UTC
    rewritten: int
    not_placed: int


class ValidationReport(ApiModel):
    """What validation against one release found (`validate.validate_catalog`): the counts an
    upgrade recomputes. Fields marked `_absent` are left out when None (reports stored before
    they existed lack them)."""

    release: str  # "enterprise 18.1", the release the mappings are resolved in
    rules: int
    rules_with_technique: int  # naming one, any outcome
    rules_without_technique: int
    # rules with a technique live in the release (ok or remapped): coverage's "rules mapped"
    rules_mapped: int | None = Field(default=None, exclude_if=_absent)
    distinct_techniques_written: int
    # techniques with a mapped rule, whatever its weight; coverage's "covered" is score > 0
    techniques_mapped: int | None = Field(default=None, exclude_if=_absent)
    distinct_techniques_covered: int  # the old name of techniques_mapped
    mappings: int
    outcomes: OutcomeCounts
    rules_with_unknown: int
    tactic_mismatches: int
    unknown_tactics: dict[str, int]  # tactic names the release does not know, with counts
    examples: dict[str, list[MappingExample]]  # per outcome, at most five
    tactic_mismatch_examples: list[TacticMismatchExample]


class ImportReport(ValidationReport):
    """The import report stored (as JSON, keys in this order) on the catalog row: validation's
    counts, then the import's own (format, telemetry links, warnings), then upgrades since."""

    format: str
    files_read: int
    rules_linked_to_data_components: int
    share_linked_to_data_components: float
    rules_linked_to_analytics: int
    share_linked_to_analytics: float
    release_fallback: ReleaseFallback | None = None
    warnings: list[ImportWarning]
    warning_count: int
    upgrades: list[UpgradeRecord] | None = Field(default=None, exclude_if=_absent)


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
    report: ImportReport
