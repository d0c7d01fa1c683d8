"""Catalog tables (Catalog, Rule, RuleTechnique, RuleDataComponent, RuleAnalytic).

A mapping keeps what the catalog wrote (`written`) beside what it resolved to in the release it
was validated against (`technique`, `outcome`), so remaps are visible and reversible.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class Catalog(SQLModel, table=True):
    __tablename__ = "catalog"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    format_id: str
    vendor: str | None = None
    product: str | None = None
    version: str | None = None
    stated_domain: str | None = None  # the ATT&CK release the catalog says it was made against
    stated_version: str | None = None
    domain: str  # the release it was validated against
    attack_version: str
    source: str
    sha256: str
    imported_at: datetime
    # bumped by every write of the catalog's rules (import, upgrade): with `id`, the key of every
    # cache of catalog-derived data (`catalog_key`)
    revision: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    rule_count: int
    # an `ImportReport` as JSON (`models.ImportReport`: model_dump to write, model_validate to read)
    report: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _catalog_fk() -> Any:
    return Column(Integer, ForeignKey("catalog.id", ondelete="CASCADE"), nullable=False)


class Rule(SQLModel, table=True):
    __tablename__ = "rule"
    __table_args__ = (UniqueConstraint("catalog_id", "rule_id", name="uq_rule_catalog_rule_id"),)

    id: int | None = Field(default=None, primary_key=True)
    catalog_id: int = Field(sa_column=_catalog_fk())
    rule_id: str
    name: str = ""
    title: str = ""
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    package: str | None = None
    severity: str | None = None
    status: str | None = None
    enabled: bool = True
    path: str | None = None
    platforms: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    references: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    log_sources: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    raw_tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tactics: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # the rule in its own language where the format carries it (ParsedRule.body); None otherwise
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class RuleTechnique(SQLModel, table=True):
    __tablename__ = "rule_technique"
    __table_args__ = (
        Index("ix_rule_technique_catalog_technique", "catalog_id", "technique"),
        Index("ix_rule_technique_rule", "rule_pk"),
    )

    id: int | None = Field(default=None, primary_key=True)
    catalog_id: int = Field(sa_column=_catalog_fk())
    rule_pk: int = Field(
        sa_column=Column(Integer, ForeignKey("rule.id", ondelete="CASCADE"), nullable=False)
    )
    written: str  # as the catalog wrote it
    technique: str | None  # ATT&CK id after folding and remapping; None when unparsable
    tactic: str | None = None  # pinned tactic shortname, if the catalog pinned one
    outcome: str  # one of OUTCOMES
    tactic_ok: bool = True
    note: str = ""
    original: str | None = None  # before a catalog upgrade rewrote it (provenance)


class RuleDataComponent(SQLModel, table=True):
    """A rule's log source linked to an ATT&CK data component (by name, release-independent)."""

    __tablename__ = "rule_data_component"
    __table_args__ = (
        Index("ix_rdc_catalog_component", "catalog_id", "data_component"),
        Index("ix_rdc_rule", "rule_pk"),
    )

    id: int | None = Field(default=None, primary_key=True)
    catalog_id: int = Field(sa_column=_catalog_fk())
    rule_pk: int = Field(
        sa_column=Column(Integer, ForeignKey("rule.id", ondelete="CASCADE"), nullable=False)
    )
    data_component: str
    log_source: str  # the normalised log-source key that matched


class RuleAnalytic(SQLModel, table=True):
    """18+: an analytic of one of the rule's techniques whose log sources the rule reads."""

    __tablename__ = "rule_analytic"
    __table_args__ = (Index("ix_rule_analytic_rule", "rule_pk"),)

    id: int | None = Field(default=None, primary_key=True)
    catalog_id: int = Field(sa_column=_catalog_fk())
    rule_pk: int = Field(
        sa_column=Column(Integer, ForeignKey("rule.id", ondelete="CASCADE"), nullable=False)
    )
    analytic: str  # ATT&CK analytic id, e.g. AN0526
    technique: str
