"""Catalog export: a stored catalog → the canonical document → YAML, JSON or CSV (`export.render`).

Mappings are written as resolved, so an upgraded catalog exports with its new ids; what the
catalog first wrote (before a remap or an upgrade) goes in each rule's `x-original-techniques`.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from app.catalog.catalogs import get_catalog_row
from app.catalog.export import MEDIA, render
from app.catalog.models import RuleRead
from app.catalog.rules import rule_reads
from app.catalog.tables import Rule
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
        "rules": [_rule_item(r) for r in rules],
    }
    return {k: v for k, v in doc.items() if v is not None}


def _rule_item(r: RuleRead) -> dict[str, Any]:
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
    }
    return {k: v for k, v in item.items() if v not in (None, "", [])}


def _log_source_text(ls: dict[str, str]) -> str:
    if "text" in ls:
        return ls["text"]
    return ", ".join(f"{k}={v}" for k, v in ls.items())


def export_catalog(session: Session, *, name: str, fmt: str) -> tuple[bytes, str, str]:
    """(content, media type, download file name) of a catalog in the canonical format."""
    if fmt not in MEDIA:
        raise InvalidInput(f"export format must be one of {', '.join(MEDIA)}")
    doc = canonical_document(session, name=name)
    return render(doc, fmt), MEDIA[fmt], f"{name}.{fmt}"
