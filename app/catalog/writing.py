"""A validated catalog's rows: rules, their mappings, data-component and analytic links.

Written in bulk (`bulk_insert`: one executemany per table, no ORM objects): an import of 100k
rules would spend most of its time building ORM rows otherwise. Used by the import and the upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson
from sqlalchemy import Connection
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from app.attack import service as attack_service
from app.catalog.tables import Rule
from app.catalog.telemetry import LogSourceMap, analytic_keys, analytic_ref_keys
from app.catalog.validate import Validation
from app.core.db import bulk_insert

if TYPE_CHECKING:
    from app.attack.tables import Release  # annotations only: the tables are attack's

Links = list[list[tuple[str, str]]]  # per rule: (data component, log source) or (analytic, tid)

RULE_COLUMNS = (
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
    "body",
)
MAPPING_COLUMNS = (
    "catalog_id",
    "rule_pk",
    "written",
    "technique",
    "tactic",
    "outcome",
    "tactic_ok",
    "note",
)


def match_analytics(
    session: Session, release: Release, validation: Validation, table: LogSourceMap
) -> Links:
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
    out: Links = []
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
    session: Session, *, catalog_id: int, validation: Validation, links: Links, analytics: Links
) -> None:
    """Bulk-insert rules, then their mappings, data-component and analytic links."""
    conn = session.connection()
    _insert_rules(conn, catalog_id, validation)
    pk: dict[str, int] = dict(
        session.execute(
            sa_select(col(Rule.rule_id), col(Rule.id)).where(col(Rule.catalog_id) == catalog_id)
        ).all()
    )
    pks = [pk[v.rule.rule_id] for v in validation.rules]
    bulk_insert(
        conn,
        "rule_technique",
        MAPPING_COLUMNS,
        [
            (catalog_id, rule_pk, m.written, m.technique, m.tactic, m.outcome, m.tactic_ok, m.note)
            for v, rule_pk in zip(validation.rules, pks, strict=True)
            for m in v.mappings
        ],
    )
    bulk_insert(
        conn,
        "rule_data_component",
        ("catalog_id", "rule_pk", "data_component", "log_source"),
        [
            (catalog_id, rule_pk, dc, key)
            for rule_pk, found in zip(pks, links, strict=True)
            for dc, key in found
        ],
    )
    insert_analytics(conn, catalog_id, pks, analytics)


def insert_analytics(
    conn: Connection, catalog_id: int, rule_pks: Sequence[int], analytics: Links
) -> None:
    """The rules' analytic links (`match_analytics`), `rule_pks` in the same order."""
    bulk_insert(
        conn,
        "rule_analytic",
        ("catalog_id", "rule_pk", "analytic", "technique"),
        [
            (catalog_id, rule_pk, aid, tid)
            for rule_pk, found in zip(rule_pks, analytics, strict=True)
            for aid, tid in found
        ],
    )


def _insert_rules(conn: Connection, catalog_id: int, validation: Validation) -> None:
    dumps = orjson.dumps
    bulk_insert(
        conn,
        "rule",
        RULE_COLUMNS,
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
                r.body,
            )
            for v in validation.rules
            for r in (v.rule,)
        ],
    )
