"""The question a coverage call answers: a release, catalogs and filters, resolved once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlmodel import Session

from app.attack import service as attack_service
from app.catalog import service as catalog_service

if TYPE_CHECKING:  # row types for annotations only: the reads go through the services
    from app.attack.tables import Release
    from app.catalog.tables import Catalog


@dataclass
class Scope:
    """A release, catalogs and filters: the question a coverage call answers."""

    release: Release
    catalogs: list[Catalog]
    platforms: list[str] = field(default_factory=list)
    tactics: list[str] = field(default_factory=list)
    threat: list[str] = field(default_factory=list)  # group / software / campaign ids


def make_scope(
    session: Session,
    *,
    release: Release,
    catalogs: Sequence[str] | None = None,
    platforms: Sequence[str] | None = None,
    tactics: Sequence[str] | None = None,
    threat: Sequence[str] | None = None,
) -> Scope:
    """Filter values in any form kbmap prints are resolved here, once, by the release's
    vocabulary; an unknown one is an error naming what is known."""
    words = attack_service.vocabulary(session, release=release)
    ids = catalog_service.catalog_ids(session, catalogs)
    return Scope(
        release=release,
        catalogs=catalog_service.catalogs_by_id(session, ids),
        platforms=words.platform_names(split_values(platforms)),
        tactics=words.tactic_shortnames(split_values(tactics)),
        threat=words.threat_ids(split_values(threat)),
    )


def split_values(values: Sequence[str] | None) -> list[str]:
    """Repeated and comma-separated values alike (`--tactic a,b --tactic c`), blanks dropped."""
    return [v.strip() for item in values or () for v in item.split(",") if v.strip()]
