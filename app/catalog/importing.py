"""Catalog import (all or nothing): parse, pick the release, validate, link telemetry, replace.

An import detects the format, parses purely, validates against one release, links log sources to
data components and analytics, then replaces the catalog of that name in one transaction, with
its `ImportReport` and a new revision (the key of every cache of catalog-derived data).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from app.attack import service as attack_service
from app.attack.stix import domain_of
from app.catalog import registry
from app.catalog.base import CatalogSource, ParsedCatalog, clean_rules
from app.catalog.catalogs import catalog_read
from app.catalog.models import CatalogRead, ImportReport, ImportWarning, ReleaseFallback
from app.catalog.parallel import Pending
from app.catalog.tables import Catalog
from app.catalog.telemetry import (
    LogSourceMap,
    data_components_for,
    load_log_source_map,
    unlinked_values,
)
from app.catalog.validate import Validation, validate_catalog
from app.catalog.writing import Links, match_analytics, write_rules
from app.core.cache import caches_of
from app.core.changes import Change, changed
from app.core.config import Limits, Settings
from app.core.db import first_of_a_name, read_session, transaction
from app.core.errors import InvalidInput, Issue, Location, TooLarge
from app.core.gc_pause import paused_gc

if TYPE_CHECKING:
    from app.attack.tables import Release  # annotations only: the tables are attack's

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
WARNINGS_KEPT = 50  # in the report; `warning_count` has them all


@dataclass(frozen=True)
class ImportResult:
    catalog: CatalogRead
    replaced: bool


def log_source_map(settings: Settings) -> LogSourceMap:
    return _cached_map(str(settings.kb_dir / "mappings" / "log-sources.yaml"))


@functools.cache
def _cached_map(path: str) -> LogSourceMap:
    """A shipped file, read once per process: not data of a database, so no `caches_of` entry
    (a write's `clear()` would make the next import read it again)."""
    return load_log_source_map(Path(path))


def catalog_name_from(source_name: str) -> str:
    """Default catalog name from a file name: 'sigma-attack18-rules.tar.gz' → 'sigma-attack18'."""
    stem = Path(source_name.rstrip("/")).name
    for suffix in (".tar.gz", ".tgz", ".tar", ".yaml", ".yml", ".json", ".csv", ".txt", ".gz"):
        stem = stem.removesuffix(suffix)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem.removesuffix("-rules")).strip("-.")
    return stem[:80] or "catalog"


def parse_source(
    source: CatalogSource,
    *,
    format_id: str,
    limits: Limits,
    started: Pending[ParsedCatalog] | None = None,
) -> ParsedCatalog:
    """Parse (or finish the parse `started` of `source`); any error-level issue refuses it."""
    pending = started or registry.start_parse(source, format_id=format_id, limits=limits)
    parsed = pending.result()
    errors = [i for i in parsed.issues if i.severity == "error"]
    if errors:
        raise InvalidInput(
            f"{errors[0].message} ({len(errors)} error(s); nothing imported)",
            errors[0].location or Location(file=source.name),
            issues=errors,
        )
    if len(parsed.rules) > limits.max_rules:
        raise TooLarge(
            f"catalog has {len(parsed.rules)} rules, over the limit of {limits.max_rules}",
            Location(file=source.name),
        )
    return parsed


def pick_release(
    session: Session, parsed: ParsedCatalog, domain: str | None, version: str | None
) -> tuple[Release, ReleaseFallback | None]:
    """The caller's release, else the one the catalog states, else the newest of its domain.

    A stated release that is not loaded falls back to the newest loaded one of its domain (the
    second value says so): bundles keep revoked and deprecated objects, so nothing is lost.
    A caller's domain that contradicts the catalog's is refused rather than guessed between.
    """
    stated = domain_of(parsed.attack_domain) if parsed.attack_domain else None
    if domain and stated and domain_of(domain) != stated:
        raise InvalidInput(
            f"domain {domain} contradicts the catalog, which declares ATT&CK {stated}"
        )
    if domain or version:
        return attack_service.get_release(session, domain=domain or stated, version=version), None
    if not parsed.attack_version:
        return attack_service.get_release(session, domain=stated), None
    d = stated or "enterprise"
    found = attack_service.find_release(session, domain=d, version=parsed.attack_version)
    if found is not None:
        return found, None
    newest = attack_service.get_release(session, domain=d)
    return newest, ReleaseFallback(
        declared=f"{d} {parsed.attack_version}",
        validated_against=f"{newest.domain} {newest.version}",
    )


def _fallback_issue(fallback: ReleaseFallback) -> Issue:
    return Issue(
        f"the catalog declares ATT&CK {fallback.declared}, which is not loaded; validated "
        f"against {fallback.validated_against}, the newest loaded release of its domain",
        severity="warning",
    )


def import_catalog(
    engine: Engine,
    settings: Settings,
    *,
    source: CatalogSource,
    format_id: str = "auto",
    name: str | None = None,
    domain: str | None = None,
    version: str | None = None,
    started: Pending[ParsedCatalog] | None = None,
) -> ImportResult:
    """Detect the format, parse, then store through `import_parsed` (all or nothing).
    `started`: the parse of `source` the caller began (`registry.start_parse`)."""
    with paused_gc():  # the parse and the rows build many objects and few cycles
        pending = started or registry.start_parse(
            source, format_id=format_id, limits=settings.limits
        )
        sha = hashlib.sha256()
        for path, data in source.files():
            sha.update(path.encode())
            sha.update(data)
        try:
            if pending.background:
                _warm_release(engine, settings, domain, version)
            parsed = parse_source(
                source, format_id=format_id, limits=settings.limits, started=pending
            )
        finally:
            pending.cancel()
        return import_parsed(
            engine,
            settings,
            parsed=parsed,
            source_name=source.name,
            sha256=sha.hexdigest(),
            name=name,
            domain=domain,
            version=version,
        )


def _warm_release(
    engine: Engine, settings: Settings, domain: str | None, version: str | None
) -> None:
    """Build what an import reads of its likely release (each is cached per release) while the
    parse runs on the other core. Speculative: a catalog that states another release, or any
    failure here, leaves the import to meet and report it itself, in its usual order."""
    with contextlib.suppress(Exception), read_session(engine) as session:
        log_source_map(settings)
        release = attack_service.get_release(session, domain=domain, version=version)
        attack_service.technique_index(session, release=release)
        attack_service.analytics_by_technique(session, release=release)


def import_parsed(
    engine: Engine,
    settings: Settings,
    *,
    parsed: ParsedCatalog,
    source_name: str,
    sha256: str,
    name: str | None = None,
    domain: str | None = None,
    version: str | None = None,
) -> ImportResult:
    """Validate a parsed catalog against a release, link telemetry, and replace the catalog of
    that name in one transaction. Also the entry for catalogs made in code (layers, benchmarks)."""
    catalog_name = name or parsed.name or catalog_name_from(source_name)
    if not _NAME.fullmatch(catalog_name):
        raise InvalidInput(
            f"catalog name {catalog_name!r} must be 1-80 letters, digits, '.', '_' or '-'"
        )
    clean_rules(parsed, settings.limits)
    table = log_source_map(settings)
    parsed.issues += _unlinked_issues(parsed, table)
    with first_of_a_name("catalog", catalog_name), transaction(engine) as session:
        session.info["audit_target"] = catalog_name  # the audit event commits with the import
        release, fallback = pick_release(session, parsed, domain, version)
        existing = _same_name(session, catalog_name)  # looked up early, deleted just before
        cause = "catalog_replace" if existing is not None else "catalog_import"
        changed(session, Change(cause, release.domain, catalog_name))
        validation = validate_catalog(
            parsed, attack_service.technique_index(session, release=release)
        )
        links = [data_components_for(v.rule.log_sources, table) for v in validation.rules]
        analytics = match_analytics(session, release, validation, table)
        report = _import_report(parsed, validation, links, analytics, fallback)
        if existing is not None:
            session.execute(delete(Catalog).where(col(Catalog.id) == existing.id))
            session.flush()
        catalog = _catalog_row(parsed, release, report, name=catalog_name, source=source_name)
        catalog.sha256 = sha256
        # a new key for the caches of its derived data
        catalog.revision = existing.revision + 1 if existing is not None else 1
        session.add(catalog)
        session.flush()
        write_rules(
            session,
            catalog_id=catalog.id or 0,
            validation=validation,
            links=links,
            analytics=analytics,
        )
        read = catalog_read(catalog)
    caches_of(engine).clear()
    return ImportResult(catalog=read, replaced=existing is not None)


def _import_report(
    parsed: ParsedCatalog,
    validation: Validation,
    links: Links,
    analytics: Links,
    fallback: ReleaseFallback | None,
) -> ImportReport:
    """Validation's counts, then the import's own: format, telemetry links, warnings."""
    issues = ([_fallback_issue(fallback)] if fallback else []) + parsed.issues
    linked = sum(1 for x in links if x)
    with_analytic = sum(1 for x in analytics if x)
    return ImportReport(
        **dict(validation.report),
        format=parsed.format_id,
        files_read=parsed.files_read,
        rules_linked_to_data_components=linked,
        share_linked_to_data_components=round(linked / len(links), 4) if links else 0.0,
        rules_linked_to_analytics=with_analytic,
        share_linked_to_analytics=round(with_analytic / len(links), 4) if links else 0.0,
        release_fallback=fallback,
        warnings=[ImportWarning.model_validate(i.as_dict()) for i in issues[:WARNINGS_KEPT]],
        warning_count=len(issues),
    )


def _unlinked_issues(parsed: ParsedCatalog, table: LogSourceMap) -> list[Issue]:
    """One warning per log-source value the tables cannot place, for a format that asks
    (`FormatTelemetry.report_key`): the rule still imports, without that link."""
    importer = registry.importers().get(parsed.format_id)
    telemetry = getattr(importer, "telemetry", None)
    key = getattr(telemetry, "report_key", None)
    if key is None:
        return []
    found = unlinked_values((r.log_sources for r in parsed.rules), table, key)
    section = telemetry.section if telemetry is not None else None
    return [
        Issue(
            f"{key} {value!r} ({count} rule(s)) links to no data component: it is not in the "
            f"{section!r} section of the log-source tables",
            severity="warning",
        )
        for value, count in found.items()
    ]


def _same_name(session: Session, name: str) -> Catalog | None:
    """The catalog this import replaces. Read before the long part of the import, so that two
    first imports of one name both find none and one of them meets the unique name (`Conflict`),
    whatever their timing; its delete (rules and links cascade) waits until the write."""
    return session.exec(select(Catalog).where(Catalog.name == name)).first()


def _catalog_row(
    parsed: ParsedCatalog, release: Release, report: ImportReport, *, name: str, source: str
) -> Catalog:

    return Catalog(
        name=name,
        format_id=parsed.format_id,
        vendor=parsed.vendor,
        product=parsed.product,
        version=parsed.version,
        stated_domain=parsed.attack_domain,
        stated_version=parsed.attack_version,
        domain=release.domain,
        attack_version=release.version,
        source=source,
        sha256="",  # the caller's
        imported_at=datetime.now(UTC),
        rule_count=len(parsed.rules),
        report=report.model_dump(mode="json"),
    )
