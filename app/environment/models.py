"""Environment shapes: what a parser hands the import (pure), and what routes return.

An environment is a named telemetry profile: systems (with their ATT&CK platforms) and, per
system, the log sources collected there. A log source is written either as an ATT&CK data
component (name or id) or as a log source the way a rule names one; the import resolves each to
data components and keeps what it could not place in the report (never dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import Field

from app.core.api_model import ApiModel
from app.core.errors import Issue

QUALITY_DIMENSIONS = (
    "device_completeness",
    "data_field_completeness",
    "timeliness",
    "consistency",
    "retention",
)  # DeTT&CT's five data-quality dimensions, each 0-5
ALL_SYSTEMS = "all"  # DeTT&CT's `applicable_to: [all]`, and a platform list of ["all"]
LogSourceKind = Literal["data_component", "log_source"]


@dataclass
class ParsedSystem:
    """A system as written: its name and the platforms it runs (names as the user wrote them)."""

    name: str
    platforms: list[str]
    line: int | None = None


@dataclass
class ParsedLogSource:
    """One log source collected on some systems, as written.

    `kind` data_component: `value` is a data component name or id (DC0032). `kind` log_source:
    `value` is either a string in ATT&CK's analytic spelling ("WinEventLog:Security
    EventCode=4624") or free text ("Sysmon EventID 1"), or a mapping with the keys a rule's log
    source carries ({"product": "windows", "category": "process_creation"}, {"service":
    "security", "event_id": "4624"}, {"provider": ..., "event_id": ...}, {"index": ...},
    {"data_source": ...}).
    """

    systems: list[str]  # system names, or [ALL_SYSTEMS]
    kind: LogSourceKind
    value: str | dict[str, str]
    since: str | None = None  # ISO date the source was connected
    products: list[str] = field(default_factory=list)
    quality: dict[str, int] | None = None  # QUALITY_DIMENSIONS → 0-5, None when not given
    available: bool = True  # DeTT&CT's available_for_data_analytics
    comment: str = ""
    line: int | None = None


@dataclass
class ParsedEnvironment:
    """A parser's whole output; `issues` with severity error refuse the import."""

    format_id: str
    systems: list[ParsedSystem]
    log_sources: list[ParsedLogSource]
    name: str | None = None
    domain: str | None = None  # "enterprise", "mobile", "ics" (or "enterprise-attack")
    description: str = ""
    exceptions: list[str] = field(default_factory=list)  # technique ids the file excludes
    issues: list[Issue] = field(default_factory=list)


class QualityRead(ApiModel):
    device_completeness: int | None = None
    data_field_completeness: int | None = None
    timeliness: int | None = None
    consistency: int | None = None
    retention: int | None = None
    factor: float = Field(description="mean of the given dimensions / 5; 1 when none is given")


class LogSourceRead(ApiModel):
    written: str = Field(description="the log source as the file wrote it")
    kind: LogSourceKind
    data_components: list[str] = Field(description="the data components it provides")
    since: str | None
    products: list[str]
    quality: QualityRead | None
    counted: bool = Field(
        description="false when the file marks it unavailable for analytics or all its "
        "quality dimensions are 0: it is listed, but no rule fires on it"
    )
    comment: str


class SystemRead(ApiModel):
    name: str
    platforms: list[str] = Field(description="ATT&CK platforms of the release it was checked on")
    log_sources: list[LogSourceRead]


class Unplaced(ApiModel):
    """A log source, platform or technique the import could not place, and why."""

    written: str
    systems: list[str]
    reason: str


class EnvironmentReport(ApiModel):
    format: str
    systems: int
    log_sources: int = Field(description="log-source entries (one per system they apply to)")
    placed: int = Field(description="entries that resolved to at least one data component")
    data_components: int = Field(description="distinct data components collected")
    unplaced: list[Unplaced] = Field(description="entries that resolve to no data component")
    not_counted: list[Unplaced] = Field(
        description="entries placed but not counted (unavailable, or quality 0)"
    )
    unknown_platforms: list[Unplaced]
    exceptions: list[str] = Field(description="technique ids the file excludes from visibility")
    unknown_exceptions: list[str]
    warnings: list[str]


class EnvironmentRead(ApiModel):
    name: str
    format_id: str
    description: str
    domain: str
    attack_version: str = Field(description="the release it was checked against at import")
    source: str
    imported_at: datetime
    revision: int
    systems: list[SystemRead]
    report: EnvironmentReport


class EnvironmentBrief(ApiModel):
    name: str
    format_id: str
    domain: str
    attack_version: str
    imported_at: datetime
    systems: int
    data_components: int
    unplaced: int


@dataclass(frozen=True)
class SystemTelemetry:
    """What one system collects, as coverage reads it (lower-cased names)."""

    name: str
    platforms: frozenset[str]  # ATT&CK platforms, lower-cased
    components: dict[str, float]  # data component → best quality factor of its counted sources


@dataclass(frozen=True)
class EnvironmentTelemetry:
    """An environment as effective coverage reads it: the typed contract coverage receives."""

    name: str
    domain: str  # the ATT&CK domain it was placed in: coverage's default release domain
    key: tuple[int, str, int]  # the key of caches derived from it
    systems: tuple[SystemTelemetry, ...]
    spelled: dict[str, str]  # lower-cased data component → as the environment's release spells it
    exceptions: frozenset[str]  # technique ids excluded from visibility
