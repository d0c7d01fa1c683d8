"""Catalog use cases: import (all or nothing), list, show, delete, rules, export.

An import detects the format, parses purely, validates against one release, links log sources to
data components, then replaces the catalog of that name in one transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, delete, func, or_
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.attack import service as attack_service
from app.attack.models import RuleRef, TechniquePage
from app.attack.stix import domain_of
from app.attack.tables import Release
from app.catalog import registry
from app.catalog.base import CatalogSource, ParsedCatalog, clean_rules
from app.catalog.export import MEDIA, render
from app.catalog.models import CatalogRead, MappingRead, RuleRead
from app.catalog.parallel import Pending
from app.catalog.tables import Catalog, Rule, RuleAnalytic, RuleDataComponent, RuleTechnique
from app.catalog.telemetry import (
    LogSourceMap,
    analytic_keys,
    analytic_ref_keys,
    data_components_for,
    load_log_source_map,
)
from app.catalog.validate import Validation, validate_catalog
from app.core.cache import BoundedCache
from app.core.config import Limits, Settings
from app.core.db import autocommit_connection, bulk_insert, read_session, transaction
from app.core.errors import Conflict, InvalidInput, Issue, Location, NotFound, TooLarge
from app.core.gc_pause import paused_gc
from app.core.pages import Page

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


@dataclass(frozen=True)
class ImportResult:
    catalog: CatalogRead
    replaced: bool


def log_source_map(settings: Settings) -> LogSourceMap:
    return _cached_map(str(settings.kb_dir / "mappings" / "log-sources.yaml"))


_MAPS: dict[str, LogSourceMap] = {}


def _cached_map(path: str) -> LogSourceMap:
    if path not in _MAPS:
        _MAPS[path] = load_log_source_map(Path(path))
    return _MAPS[path]


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


def _pick_release(
    session: Session, parsed: ParsedCatalog, domain: str | None, version: str | None
) -> tuple[Release, dict[str, str] | None]:
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
    return newest, {
        "declared": f"{d} {parsed.attack_version}",
        "validated_against": f"{newest.domain} {newest.version}",
    }


def _fallback_issue(fallback: dict[str, str]) -> Issue:
    return Issue(
        f"the catalog declares ATT&CK {fallback['declared']}, which is not loaded; validated "
        f"against {fallback['validated_against']}, the newest loaded release of its domain",
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
    with _same_name_at_once(catalog_name), transaction(engine) as session:
        session.info["audit_target"] = catalog_name  # the audit event commits with the import
        release, fallback = _pick_release(session, parsed, domain, version)
        issues = ([_fallback_issue(fallback)] if fallback else []) + parsed.issues
        index = attack_service.technique_index(session, release=release)
        validation = validate_catalog(parsed, index)
        links = [data_components_for(v.rule.log_sources, table) for v in validation.rules]
        linked = sum(1 for x in links if x)
        analytics = match_analytics(session, release, validation, table)
        with_analytic = sum(1 for x in analytics if x)
        report = {
            **validation.report,
            "format": parsed.format_id,
            "files_read": parsed.files_read,
            "rules_linked_to_data_components": linked,
            "share_linked_to_data_components": round(linked / len(links), 4) if links else 0.0,
            "rules_linked_to_analytics": with_analytic,
            "share_linked_to_analytics": round(with_analytic / len(links), 4) if links else 0.0,
            "release_fallback": fallback,
            "warnings": [i.as_dict() for i in issues[:50]],
            "warning_count": len(issues),
        }
        existing = session.exec(select(Catalog).where(Catalog.name == catalog_name)).first()
        if existing is not None:
            session.execute(delete(Catalog).where(col(Catalog.id) == existing.id))
            session.flush()
        catalog = Catalog(
            name=catalog_name,
            format_id=parsed.format_id,
            vendor=parsed.vendor,
            product=parsed.product,
            version=parsed.version,
            stated_domain=parsed.attack_domain,
            stated_version=parsed.attack_version,
            domain=release.domain,
            attack_version=release.version,
            source=source_name,
            sha256=sha256,
            imported_at=datetime.now(UTC),
            rule_count=len(parsed.rules),
            report=report,
        )
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
    return ImportResult(catalog=read, replaced=existing is not None)


@contextlib.contextmanager
def _same_name_at_once(name: str) -> Iterator[None]:
    """Two first imports of one new name race to create it: the database's unique name lets one
    win, and the other (rolled back whole) is a Conflict rather than an IntegrityError."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(
            f"catalog {name!r} was created by another import at the same time; nothing was "
            "written by this one (import again to replace it)"
        ) from exc


def match_analytics(
    session: Session, release: Release, validation: Validation, table: LogSourceMap
) -> list[list[tuple[str, str]]]:
    """Per rule: (analytic, technique) pairs where an analytic of one of the rule's techniques
    names a log source (name + event) that the rule reads. Empty for ≤ 17 releases."""
    if release.detection_model != "detection-strategy":
        return [[] for _ in validation.rules]
    by_technique = attack_service.analytics_by_technique(session, release=release)
    ref_keys: dict[str, set[tuple[str, str]]] = {}
    for items in by_technique.values():
        for aid, refs in items:
            if aid not in ref_keys:
                ref_keys[aid] = set().union(*(analytic_ref_keys(n, c) for n, c in refs))
    out: list[list[tuple[str, str]]] = []
    for v in validation.rules:
        keys = analytic_keys(v.rule.log_sources, table)
        found: dict[tuple[str, str], None] = {}
        if keys:
            for m in v.mappings:
                for aid, _refs in by_technique.get(m.technique or "", ()):
                    if keys & ref_keys[aid]:
                        found[(aid, m.technique or "")] = None
        out.append(list(found))
    return out


def write_rules(
    session: Session,
    *,
    catalog_id: int,
    validation: Validation,
    links: list[list[tuple[str, str]]],
    analytics: list[list[tuple[str, str]]],
) -> None:
    """Bulk-insert rules, then their mappings and data-component links (executemany)."""
    conn = session.connection()
    dumps = orjson.dumps
    bulk_insert(
        conn,
        "rule",
        (
            "catalog_id",
            "rule_id",
            "name",
            "title",
            "description",
            "package",
            "severity",
            "status",
            "enabled",
            "path",
            "platforms",
            "references",
            "log_sources",
            "raw_tags",
            "tactics",
            "extra",
        ),
        [
            (
                catalog_id,
                r.rule_id,
                r.name,
                r.title,
                r.description,
                r.package,
                r.severity,
                r.status,
                r.enabled,
                r.path,
                dumps(r.platforms).decode(),
                dumps(r.references).decode(),
                dumps(r.log_sources).decode(),
                dumps(r.raw_tags).decode(),
                dumps(v.tactics).decode(),
                dumps(r.extra, default=str).decode(),
            )
            for v in validation.rules
            for r in (v.rule,)
        ],
    )
    pk: dict[str, int] = dict(
        session.execute(
            sa_select(col(Rule.rule_id), col(Rule.id)).where(col(Rule.catalog_id) == catalog_id)
        ).all()
    )
    bulk_insert(
        conn,
        "rule_technique",
        ("catalog_id", "rule_pk", "written", "technique", "tactic", "outcome", "tactic_ok", "note"),
        [
            (
                catalog_id,
                pk[v.rule.rule_id],
                m.written,
                m.technique,
                m.tactic,
                m.outcome,
                m.tactic_ok,
                m.note,
            )
            for v in validation.rules
            for m in v.mappings
        ],
    )
    bulk_insert(
        conn,
        "rule_data_component",
        ("catalog_id", "rule_pk", "data_component", "log_source"),
        [
            (catalog_id, pk[v.rule.rule_id], dc, key)
            for v, found in zip(validation.rules, links, strict=True)
            for dc, key in found
        ],
    )
    bulk_insert(
        conn,
        "rule_analytic",
        ("catalog_id", "rule_pk", "analytic", "technique"),
        [
            (catalog_id, pk[v.rule.rule_id], aid, tid)
            for v, found in zip(validation.rules, analytics, strict=True)
            for aid, tid in found
        ],
    )


def catalog_read(c: Catalog) -> CatalogRead:
    stated = f"{c.stated_domain or 'enterprise'} {c.stated_version}" if c.stated_version else None
    return CatalogRead(
        name=c.name,
        format_id=c.format_id,
        vendor=c.vendor,
        product=c.product,
        version=c.version,
        stated_release=stated,
        domain=c.domain,
        attack_version=c.attack_version,
        source=c.source,
        imported_at=c.imported_at,
        rule_count=c.rule_count,
        release_fallback=c.report.get("release_fallback"),
        report=c.report,
    )


def list_catalogs(session: Session) -> list[CatalogRead]:
    return [catalog_read(c) for c in session.exec(select(Catalog).order_by(Catalog.name)).all()]


def get_catalog_row(session: Session, *, name: str) -> Catalog:
    c = session.exec(select(Catalog).where(Catalog.name == name)).first()
    if c is None:
        raise NotFound(f"no catalog named {name!r}")
    return c


def get_catalog(session: Session, *, name: str) -> CatalogRead:
    return catalog_read(get_catalog_row(session, name=name))


def delete_catalog(engine: Engine, *, name: str) -> None:
    with transaction(engine) as session:
        c = get_catalog_row(session, name=name)
        session.execute(delete(Catalog).where(col(Catalog.id) == c.id))


def catalog_ids(session: Session, names: Iterable[str] | None) -> dict[int, str]:
    """Catalog id → name for the named catalogs (all when None); unknown names are NotFound."""
    rows = session.execute(_CATALOG_NAMES).all()
    table = {int(i or 0): str(n) for i, n in rows}
    wanted = list(names or [])
    if not wanted:
        return table
    missing = [n for n in wanted if n not in table.values()]
    if missing:
        known = ", ".join(sorted(table.values())) or "none (kbmap catalog import FILE)"
        raise NotFound(
            f"no catalog named {', '.join(repr(m) for m in missing)}; known: {known}",
            Location(field="catalog"),
        )
    return {i: n for i, n in table.items() if n in wanted}


# ---- rules -----------------------------------------------------------------------------------


def _rule_reads(session: Session, rules: list[Rule], names: dict[int, str]) -> list[RuleRead]:
    pks = [r.id for r in rules]
    maps: dict[int, list[MappingRead]] = defaultdict(list)
    dcs: dict[int, list[str]] = defaultdict(list)
    ans: dict[int, list[str]] = defaultdict(list)
    if pks:
        for a in session.exec(select(RuleAnalytic).where(col(RuleAnalytic.rule_pk).in_(pks))).all():
            if a.analytic not in ans[a.rule_pk]:
                ans[a.rule_pk].append(a.analytic)
        for m in session.exec(
            select(RuleTechnique).where(col(RuleTechnique.rule_pk).in_(pks))
        ).all():
            maps[m.rule_pk].append(MappingRead.model_validate(m, from_attributes=True))
        for d in session.exec(
            select(RuleDataComponent).where(col(RuleDataComponent.rule_pk).in_(pks))
        ).all():
            if d.data_component not in dcs[d.rule_pk]:
                dcs[d.rule_pk].append(d.data_component)
    return [
        RuleRead(
            catalog=names[r.catalog_id],
            rule_id=r.rule_id,
            name=r.name,
            title=r.title,
            description=r.description,
            package=r.package,
            severity=r.severity,
            status=r.status,
            enabled=r.enabled,
            platforms=r.platforms,
            references=r.references,
            log_sources=r.log_sources,
            data_components=dcs[r.id or 0],
            analytics=sorted(ans[r.id or 0]),
            path=r.path,
            raw_tags=r.raw_tags,
            tactics=r.tactics,
            mappings=maps[r.id or 0],
        )
        for r in rules
    ]


def list_rules(
    session: Session,
    *,
    catalogs: list[str] | None = None,
    technique: str | None = None,
    include_subtechniques: bool = False,
    tactic: str | None = None,
    data_component: str | None = None,
    status: str | None = None,
    outcome: str | None = None,
    q: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[RuleRead]:
    names = catalog_ids(session, catalogs)
    stmt = select(Rule).where(col(Rule.catalog_id).in_(list(names)))
    if technique or outcome:
        sub = select(RuleTechnique.rule_pk)
        if technique:
            t = technique.strip().upper()
            cond: Any = col(RuleTechnique.technique) == t
            if include_subtechniques:
                cond = or_(cond, col(RuleTechnique.technique).like(f"{t}.%"))
            sub = sub.where(cond)
        if outcome:
            sub = sub.where(RuleTechnique.outcome == outcome)
        stmt = stmt.where(col(Rule.id).in_(sub))
    if data_component:
        sub2 = select(RuleDataComponent.rule_pk).where(
            func.lower(RuleDataComponent.data_component) == data_component.lower()
        )
        stmt = stmt.where(col(Rule.id).in_(sub2))
    if status:
        stmt = stmt.where(Rule.status == status)
    if q:
        p = f"%{q.lower()}%"
        stmt = stmt.where(
            or_(
                func.lower(Rule.rule_id).like(p),
                func.lower(Rule.title).like(p),
                func.lower(Rule.name).like(p),
                func.lower(Rule.description).like(p),
            )
        )
    rules = list(session.exec(stmt.order_by(col(Rule.catalog_id), col(Rule.rule_id))).all())
    if tactic:
        t = _rule_tactic(session, names, tactic)
        rules = [r for r in rules if t in r.tactics]
    page = rules[offset : offset + limit]
    return Page(
        items=_rule_reads(session, page, names), total=len(rules), limit=limit, offset=offset
    )


def _rule_tactic(session: Session, catalogs: dict[int, str], value: str) -> str:
    """The tactic shortname `value` names in the releases the catalogs were validated against
    (name, id or shortname, as coverage takes them); unknown in all of them is an error."""
    rows = session.exec(select(Catalog).where(col(Catalog.id).in_(list(catalogs)))).all()
    refused: list[InvalidInput] = []
    for domain, version in sorted({(c.domain, c.attack_version) for c in rows}):
        release = attack_service.find_release(session, domain=domain, version=version)
        if release is not None:
            try:
                return attack_service.vocabulary(session, release=release).tactic_shortnames(
                    [value]
                )[0]
            except InvalidInput as exc:
                refused.append(exc)
    if refused:
        raise refused[0]
    return value.strip().lower().replace("_", "-")  # no catalog, or its release is gone


def get_rule(session: Session, *, catalog: str, rule_id: str) -> RuleRead:
    names = catalog_ids(session, [catalog])
    rule = session.exec(
        select(Rule).where(col(Rule.catalog_id).in_(list(names)), Rule.rule_id == rule_id)
    ).first()
    if rule is None:
        raise NotFound(f"no rule {rule_id!r} in catalog {catalog!r}")
    return _rule_reads(session, [rule], names)[0]


# Built once with bound parameters: the technique page runs these on every render, and building
# a statement costs more than SQLite takes to answer it.
_CATALOG_NAMES = sa_select(col(Catalog.id), col(Catalog.name))
_RULES_FOR_TECHNIQUES = (
    sa_select(
        col(RuleTechnique.technique),
        col(RuleTechnique.written),
        col(RuleTechnique.outcome),
        col(Rule.id),
        col(Rule.catalog_id),
        col(Rule.rule_id),
        col(Rule.name),
        col(Rule.title),
        col(Rule.package),
        col(Rule.enabled),
    )
    .join(Rule, col(Rule.id) == col(RuleTechnique.rule_pk))
    .where(
        col(RuleTechnique.catalog_id).in_(bindparam("catalogs", expanding=True)),
        col(RuleTechnique.technique).in_(bindparam("ids", expanding=True)),
        col(RuleTechnique.outcome).in_(("ok", "remapped")),
    )
)


def rules_for_techniques(
    session: Session, *, techniques: Iterable[str], names: dict[int, str]
) -> dict[str, list[RuleRef]]:
    """Rules mapped (after remapping) to each technique id, from the catalogs `names` holds
    (id → name, as `catalog_ids` gives); deprecated/unknown excluded."""
    ids = list(set(techniques))
    if not ids or not names:
        return {}
    rows = (
        session.connection()
        .execute(_RULES_FOR_TECHNIQUES, {"catalogs": list(names), "ids": ids})
        .all()
    )
    out: dict[str, list[RuleRef]] = defaultdict(list)
    seen: set[tuple[str, int]] = set()
    for tech, written, outcome, pk, cid, rid, name, title, package, enabled in sorted(
        rows, key=lambda x: (names[x[4]], x[5])
    ):
        key = (tech or "", pk or 0)
        if key in seen:
            continue
        seen.add(key)
        out[tech or ""].append(
            RuleRef(
                catalog=names[cid],
                rule_id=rid,
                name=name,
                title=title,
                package=package,
                enabled=enabled,
                mapped_as=written,
                how="remapped" if outcome == "remapped" else "direct",
                technique=tech or "",
            )
        )
    return out


def export_rows(session: Session, *, name: str) -> dict[str, Any]:
    """The catalog as a canonical-format document: mappings as resolved, and what the catalog
    first wrote (before a remap or an upgrade) in each rule's `x-original-techniques`."""
    c = get_catalog_row(session, name=name)
    rules = _rule_reads(
        session,
        list(
            session.exec(select(Rule).where(Rule.catalog_id == c.id).order_by(Rule.rule_id)).all()
        ),
        {c.id or 0: c.name},
    )
    doc_rules = []
    for r in rules:
        techniques = []
        for m in r.mappings:
            tid = m.technique or m.written  # unknown ids too, folded to Txxxx, so they re-import
            techniques.append(f"{tid}@{m.tactic}" if m.tactic else tid)
        originals = [
            m.original or m.written for m in r.mappings if m.original or m.outcome == "remapped"
        ]
        item: dict[str, Any] = {
            "id": r.rule_id,
            "name": r.name,
            "title": r.title,
            "description": r.description,
            "package": r.package,
            "techniques": list(dict.fromkeys(techniques)),
            "tactics": r.tactics,
            "data_sources": [_log_source_text(ls) for ls in r.log_sources],
            "platforms": r.platforms,
            "severity": r.severity,
            "status": r.status,
            "enabled": r.enabled,
            "references": r.references,
            "x-original-techniques": list(dict.fromkeys(originals)),
        }
        doc_rules.append({k: v for k, v in item.items() if v not in (None, "", [])})
    doc: dict[str, Any] = {
        "name": c.name,
        "vendor": c.vendor,
        "product": c.product,
        "version": c.version,
        "attack": {"domain": c.domain, "version": c.attack_version},
        "rules": doc_rules,
    }
    return {k: v for k, v in doc.items() if v is not None}


def _log_source_text(ls: dict[str, str]) -> str:
    if "text" in ls:
        return ls["text"]
    return ", ".join(f"{k}={v}" for k, v in ls.items())


def get_technique_page(
    session: Session,
    *,
    releases: list[Release],
    attack_id: str,
    catalogs: list[str] | None = None,
) -> TechniquePage:
    """The ATT&CK page with its rules: exact mappings, and its sub-techniques' rules apart."""
    return _page_with_rules(
        session, releases=releases, attack_id=attack_id, names=catalog_ids(session, catalogs)
    )


def _page_with_rules(
    session: Session, *, releases: list[Release], attack_id: str, names: dict[int, str]
) -> TechniquePage:
    page = attack_service.get_technique_page(session, releases=releases, attack_id=attack_id)
    subs = [s.id for s in page.subtechniques if s.id]
    found = rules_for_techniques(session, techniques=[page.id, *subs], names=names)
    return page.model_copy(  # the ATT&CK page is shared: the rules go on a copy
        update={
            "rules": found.get(page.id, []),
            "subtechnique_rules": [r for s in subs for r in found.get(s, [])],
        }
    )


# Rendered technique pages, the API's hottest read. A page is made of a release and of the
# catalogs' rules, so the key holds the database, every release's id and load time and every
# catalog's id and import time, read in the request's own snapshot, with the request's parameters
# (which, given that state, pick the same release): an ingest, import, upgrade or delete by any
# process changes the key, and no page outlives what it was made from.
PAGE_CACHE_BYTES = 64 << 20
_STATE_SQL = (
    f'SELECT 0, id, loaded_at FROM "{Release.__tablename__}" UNION ALL '
    f'SELECT 1, id, imported_at FROM "{Catalog.__tablename__}" ORDER BY 1, 2'
)
_page_cache: BoundedCache[bytes] = BoundedCache(4096, max_weight=PAGE_CACHE_BYTES, weigh=len)
# What a request's domain, version and catalogs resolve to, given the same state: the releases
# to look in and the catalogs' names (a third of a page's render time when queried each time).
_page_scopes: BoundedCache[tuple[list[Release], dict[int, str]]] = BoundedCache(256)


def technique_page_json(
    engine: Engine,
    *,
    attack_id: str,
    domain: str | None = None,
    version: str | None = None,
    catalogs: list[str] | None = None,
) -> bytes:
    """The technique page with its rules as JSON, cached (see `_page_cache`). A hit costs one
    statement outside any transaction, sent as plain SQL (through the ORM it costs five times as
    much); a miss renders on one snapshot, under the state read in that snapshot."""
    params = (
        attack_id.upper(),
        domain.lower() if domain else None,
        version,
        tuple(sorted(set(catalogs or ()))),
    )
    database = str(engine.url)  # tests (and tools) open several databases in one process
    with autocommit_connection(engine) as conn:
        page = _page_cache.get((database, _state(conn), *params))
    if page is not None:
        return page
    with read_session(engine) as session:
        state = _state(session.connection())

        def scope() -> tuple[list[Release], dict[int, str]]:
            releases = attack_service.releases_for_lookup(session, domain=domain, version=version)
            return releases, catalog_ids(session, catalogs)

        def render() -> bytes:
            releases, names = _page_scopes.get_or_make((database, state, *params[1:]), scope)
            full = _page_with_rules(session, releases=releases, attack_id=attack_id, names=names)
            return full.model_dump_json().encode()

        return _page_cache.get_or_make((database, state, *params), render)


def _state(conn: Connection) -> tuple[Any, ...]:
    return tuple(conn.exec_driver_sql(_STATE_SQL).all())


def export_catalog(session: Session, *, name: str, fmt: str) -> tuple[bytes, str, str]:
    """(content, media type, download file name) of a catalog in the canonical format."""
    if fmt not in MEDIA:
        raise InvalidInput(f"export format must be one of {', '.join(MEDIA)}")
    doc = export_rows(session, name=name)
    return render(doc, fmt), MEDIA[fmt], f"{name}.{fmt}"
