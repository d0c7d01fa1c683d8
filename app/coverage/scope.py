"""The question a coverage call answers: a release, catalogs and filters, resolved once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import Session

from app.attack import service as attack_service
from app.catalog import service as catalog_service
from app.environment import service as environment_service

if TYPE_CHECKING:  # row types for annotations only: the reads go through the services
    from app.attack.tables import Release
    from app.catalog.service import PlatformMap
    from app.catalog.tables import Catalog
    from app.environment.service import EnvironmentTelemetry


@dataclass(frozen=True)
class EnvironmentScope:
    """An environment a coverage call is asked under, with the table that says which ATT&CK
    platforms each rule platform is."""

    telemetry: EnvironmentTelemetry
    rule_platforms: PlatformMap


@dataclass
class Scope:
    """A release, catalogs and filters: the question a coverage call answers."""

    release: Release
    catalogs: list[Catalog]
    platforms: list[str] = field(default_factory=list)
    tactics: list[str] = field(default_factory=list)
    threat: list[str] = field(default_factory=list)  # group / software / campaign ids
    environment: EnvironmentScope | None = None
    # only these technique ids (empty: all): an object page scores just the techniques it lists
    techniques: frozenset[str] = frozenset()


def make_scope(
    session: Session,
    *,
    release: Release | None = None,
    domain: str | None = None,
    version: str | None = None,
    catalogs: Sequence[str] | None = None,
    platforms: Sequence[str] | None = None,
    tactics: Sequence[str] | None = None,
    threat: Sequence[str] | None = None,
    environment: str | None = None,
    kb_dir: Path | None = None,
) -> Scope:
    """Filter values in any form kbmap prints are resolved here, once, by the release's
    vocabulary; an unknown one is an error naming what is known. Without `release`, the one
    `domain` and `version` name (`_release_for`). `environment` needs `kb_dir` (the rule-platform
    table)."""
    if release is None:
        release = _release_for(session, domain=domain, version=version, environment=environment)
    words = attack_service.vocabulary(session, release=release)
    ids = catalog_service.catalog_ids(session, catalogs)
    return Scope(
        release=release,
        catalogs=catalog_service.catalogs_by_id(session, ids),
        platforms=words.platform_names(split_values(platforms)),
        tactics=words.tactic_shortnames(split_values(tactics)),
        threat=words.threat_ids(split_values(threat)),
        environment=_environment(session, environment, kb_dir),
    )


def _environment(
    session: Session, name: str | None, kb_dir: Path | None
) -> EnvironmentScope | None:
    if not name:
        return None
    if kb_dir is None:
        raise ValueError("an environment scope needs kb_dir")  # a caller's bug, not input
    return EnvironmentScope(
        environment_service.environment_telemetry(session, name=name),
        catalog_service.platform_map(kb_dir),
    )


def _release_for(
    session: Session, *, domain: str | None, version: str | None, environment: str | None
) -> Release:
    """The release named, else the newest of the environment's domain (an ICS environment is
    read against ICS), else the newest enterprise release."""
    if not domain and environment:
        domain = environment_service.environment_telemetry(session, name=environment).domain
    return attack_service.get_release(session, domain=domain, version=version)


def split_values(values: Sequence[str] | None) -> list[str]:
    """Repeated and comma-separated values alike (`--tactic a,b --tactic c`), blanks dropped."""
    return [v.strip() for item in values or () for v in item.split(",") if v.strip()]
