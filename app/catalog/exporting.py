"""Catalog export: a stored catalog → the canonical document → YAML, JSON or CSV (`export.render`),
or → a STIX 2.1 bundle (`stix_bundle`).

Mappings are written as resolved, so an upgraded catalog exports with its new ids; what the
catalog first wrote (before a remap or an upgrade) goes in each rule's `x-original-techniques`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.attack import service as attack_service
from app.catalog.catalogs import get_catalog_row
from app.catalog.export import EXPORTS, SUFFIXES, render
from app.catalog.models import RuleRead
from app.catalog.rules import rule_reads
from app.catalog.tables import Rule, RuleTechnique
from app.core.errors import InvalidInput


def canonical_document(session: Session, *, name: str) -> dict[str, Any]:
    """The catalog as a canonical-format document (what `export.render` writes)."""
    c = get_catalog_row(session, name=name)
    rows = session.exec(select(Rule).where(Rule.catalog_id == c.id).order_by(Rule.rule_id)).all()
    rules = rule_reads(session, list(rows), {c.id or 0: c.name})
    doc: dict[str, Any] = {
        "name": c.name,
        "vendor": c.vendor,
        "product": c.product,
        "version": c.version,
        "attack": {"domain": c.domain, "version": c.attack_version},
        "rules": [_rule_item(r, row.body) for r, row in zip(rules, rows, strict=True)],
    }
    return {k: v for k, v in doc.items() if v is not None}


def _rule_item(r: RuleRead, body: str | None) -> dict[str, Any]:
    """One rule: its mappings as resolved, what it first wrote in `x-original-techniques`."""
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
        "body": body,
    }
    return {k: v for k, v in item.items() if v not in (None, "", [])}


def _log_source_text(ls: dict[str, str]) -> str:
    if "text" in ls:
        return ls["text"]
    return ", ".join(f"{k}={v}" for k, v in ls.items())


def export_catalog(session: Session, *, name: str, fmt: str) -> tuple[bytes, str, str]:
    """(content, media type, download file name) of a catalog in the canonical format or STIX."""
    if fmt not in EXPORTS:
        raise InvalidInput(f"export format must be one of {', '.join(EXPORTS)}, not {fmt!r}")
    if fmt == "stix":
        content = stix_export(session, name=name)
    else:
        content = render(canonical_document(session, name=name), fmt)
    return content, EXPORTS[fmt], f"{name}.{SUFFIXES[fmt]}"


def stix_export(session: Session, *, name: str, strict: bool = False) -> bytes:
    """The catalog as a STIX 2.1 bundle (`stix_bundle`), `indicates` pointing at the
    attack-patterns of the release it was validated against (`strict`: see `bundle_bytes`).
    `stix_bundle` is imported here: stix2 takes 0.3 s to import, which no other export, import
    or request should pay."""
    from app.catalog.stix_bundle import CatalogFacts, RuleFacts, WrittenMapping, bundle_bytes

    c = get_catalog_row(session, name=name)
    rows = session.execute(_RULES, {"cid": c.id}).all()  # plain rows: no ORM instances
    mappings: dict[int, list[WrittenMapping]] = defaultdict(list)
    for pk, *fields in session.execute(_MAPPINGS, {"cid": c.id}).all():
        mappings[pk].append(WrittenMapping(*fields))
    facts = CatalogFacts(
        c.name, c.format_id, c.vendor, c.product, c.version, c.domain, c.attack_version,
        c.imported_at,
    )  # fmt: skip
    rules = [RuleFacts(*[*fields, mappings[pk]]) for pk, *fields in rows]
    targets = _technique_stix_ids(session, c.domain, c.attack_version)
    return bundle_bytes(facts, rules, targets, strict=strict)


_MAPPINGS = (
    sa_select(
        col(RuleTechnique.rule_pk),
        col(RuleTechnique.written),
        col(RuleTechnique.technique),
        col(RuleTechnique.tactic),
        col(RuleTechnique.outcome),
    )
    .where(col(RuleTechnique.catalog_id) == bindparam("cid"))
    .order_by(col(RuleTechnique.id))
)


# the rule's key, then RuleFacts' fields in its order
_RULES = (
    sa_select(
        col(Rule.id), col(Rule.rule_id), col(Rule.name), col(Rule.title), col(Rule.description),
        col(Rule.package), col(Rule.severity), col(Rule.status), col(Rule.enabled), col(Rule.path),
        col(Rule.platforms), col(Rule.references), col(Rule.log_sources), col(Rule.raw_tags),
        col(Rule.tactics), col(Rule.extra), col(Rule.body),
    )
    .where(col(Rule.catalog_id) == bindparam("cid"))
    .order_by(col(Rule.rule_id))
)  # fmt: skip


def _technique_stix_ids(session: Session, domain: str, version: str) -> dict[str, str]:
    """Technique id → attack-pattern STIX id in the release (empty if it is no longer loaded)."""
    release = attack_service.find_release(session, domain=domain, version=version)
    if release is None or release.id is None:
        return {}
    objs = attack_service.live_objects(session, release_id=release.id, kinds=("technique",))
    return {o.attack_id: o.stix_id for o in objs if o.attack_id}
