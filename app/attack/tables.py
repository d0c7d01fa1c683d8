"""ATT&CK tables: one row per release, per STIX object, per relationship, plus derived links.

Objects share one table (`attack_object`, kind in ATT&CK's words) because every kind has the same
core (id, name, description, flags); kind-specific fields ride in `data`. Links between objects are
STIX ids scoped by release, so a release is written with plain bulk inserts and dropped by cascade.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class Release(SQLModel, table=True):
    __tablename__ = "release"
    __table_args__ = (UniqueConstraint("domain", "version", name="uq_release_domain_version"),)

    id: int | None = Field(default=None, primary_key=True)
    domain: str = Field(index=True)  # enterprise | mobile | ics
    version: str
    version_key: int  # sortable: major * 1000 + minor
    stix_version: str
    source: str
    sha256: str
    loaded_at: datetime
    object_count: int
    technique_count: int  # active (neither revoked nor deprecated)
    detection_model: str  # "data-component" (<= 17) or "detection-strategy" (18+)


def _release_fk() -> Any:
    return Column(Integer, ForeignKey("release.id", ondelete="CASCADE"), nullable=False)


class AttackObject(SQLModel, table=True):
    __tablename__ = "attack_object"
    __table_args__ = (
        UniqueConstraint("release_id", "stix_id", name="uq_object_release_stix"),
        Index("ix_object_release_kind_attack_id", "release_id", "kind", "attack_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(sa_column=_release_fk())
    stix_id: str
    kind: str  # technique, tactic, mitigation, group, software, campaign, data_source, ...
    attack_id: str | None = None
    name: str = ""
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    url: str | None = None
    created: str | None = None
    modified: str | None = None
    revoked: bool = False
    deprecated: bool = False
    platforms: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Relationship(SQLModel, table=True):
    __tablename__ = "relationship"
    __table_args__ = (
        Index("ix_relationship_source", "release_id", "source_ref", "relationship_type"),
        Index("ix_relationship_target", "release_id", "target_ref", "relationship_type"),
    )

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(sa_column=_release_fk())
    stix_id: str
    relationship_type: str
    source_ref: str
    target_ref: str
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    revoked: bool = False
    deprecated: bool = False


class TechniqueTactic(SQLModel, table=True):
    """Technique ↔ tactic from kill-chain phases (a technique may sit under several tactics)."""

    __tablename__ = "technique_tactic"
    __table_args__ = (Index("ix_technique_tactic", "release_id", "technique_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(sa_column=_release_fk())
    technique_ref: str
    tactic: str  # shortname, e.g. lateral-movement


class Citation(SQLModel, table=True):
    """A cited source of one object or relationship: `(Citation: Name)` in its text → the URL
    its STIX `external_references` give. Kept per owner: some names carry different URLs in
    different objects (an archived copy), and a text's citation is its own owner's."""

    __tablename__ = "attack_citation"
    __table_args__ = (Index("ix_citation_release_source", "release_id", "source_name"),)

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(sa_column=_release_fk())
    owner_ref: str  # STIX id of the object or relationship whose references these are
    source_name: str = Field(sa_column=Column(Text, nullable=False))
    url: str = Field(sa_column=Column(Text, nullable=False))


class TechniqueDataComponent(SQLModel, table=True):
    """Derived at ingest: which data component can detect which technique, for both models.

    ≤ 17 rows come from `detects` relationships (no strategy/analytic); 18+ rows come from
    detection strategy → analytic → log-source reference.
    """

    __tablename__ = "technique_data_component"
    __table_args__ = (
        Index("ix_tdc_technique", "release_id", "technique_ref"),
        Index("ix_tdc_component", "release_id", "data_component_ref"),
    )

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(sa_column=_release_fk())
    technique_ref: str
    data_component_ref: str
    detection_strategy_ref: str | None = None
    analytic_ref: str | None = None
