"""Environment tables: one row per environment, per system, per (system, log source).

A log source row keeps what the file wrote (`written`, `value`) beside what the import resolved it
to (`data_components`), as a catalog's mapping keeps `written` beside `technique`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, Text
from sqlmodel import Field, SQLModel


class Environment(SQLModel, table=True):
    __tablename__ = "environment"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    format_id: str
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    domain: str  # the release it was checked against at import
    attack_version: str
    source: str
    sha256: str
    imported_at: datetime
    revision: int = 1  # bumped by every re-import: with `id`, the key of derived caches
    exceptions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # an `EnvironmentReport` as JSON
    report: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _environment_fk() -> Any:
    return Column(Integer, ForeignKey("environment.id", ondelete="CASCADE"), nullable=False)


class EnvironmentSystem(SQLModel, table=True):
    __tablename__ = "environment_system"
    __table_args__ = (Index("ix_environment_system_env", "environment_id"),)

    id: int | None = Field(default=None, primary_key=True)
    environment_id: int = Field(sa_column=_environment_fk())
    position: int
    name: str
    platforms: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    written_platforms: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )


class EnvironmentLogSource(SQLModel, table=True):
    __tablename__ = "environment_log_source"
    __table_args__ = (Index("ix_environment_log_source_env", "environment_id"),)

    id: int | None = Field(default=None, primary_key=True)
    environment_id: int = Field(sa_column=_environment_fk())
    system_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("environment_system.id", ondelete="CASCADE"), nullable=False
        )
    )
    position: int
    kind: str  # data_component | log_source
    written: str  # as shown to users
    value: Any = Field(default=None, sa_column=Column(JSON, nullable=True))  # str or mapping
    data_components: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    since: str | None = None
    products: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    quality: dict[str, int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    counted: bool = True
    comment: str = ""
