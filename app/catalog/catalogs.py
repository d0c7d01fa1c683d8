"""Catalog reads and delete: one catalog, the list, names → ids, and the key of derived caches."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, delete
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.catalog.models import CatalogRead, ImportReport
from app.catalog.tables import Catalog
from app.core.cache import caches_of
from app.core.changes import Change, changed
from app.core.db import transaction
from app.core.errors import Location, NotFound

# Built once: the technique page resolves catalog names on every render, and building a
# statement costs more than SQLite takes to answer it.
_CATALOG_NAMES = sa_select(col(Catalog.id), col(Catalog.name))
# Every catalog's `catalog_key` as plain SQL rows, for a cache whose key must be read in one
# cheap statement outside the ORM (the technique page's JSON, beside the releases' rows
# `(0, id, loaded_at)`): the first column tags a catalog row (odd) and carries its revision.
CATALOGS_STATE_SQL = f'SELECT 1 + 2 * revision, id, imported_at FROM "{Catalog.__tablename__}"'


def catalog_key(catalog: Catalog) -> tuple[int, str, int]:
    """The key of every cache of data derived from `catalog`: its row (id and import time, since
    SQLite may give a deleted catalog's id to the next one) and its rules' revision (bumped by
    every write of them: an import, an upgrade)."""
    return (catalog.id or 0, str(catalog.imported_at), catalog.revision)


def catalog_read(c: Catalog) -> CatalogRead:
    stated = f"{c.stated_domain or 'enterprise'} {c.stated_version}" if c.stated_version else None
    report = ImportReport.model_validate(c.report)
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
        release_fallback=report.release_fallback,
        report=report,
    )


def list_catalogs(session: Session) -> list[CatalogRead]:
    return [catalog_read(c) for c in session.exec(select(Catalog).order_by(Catalog.name)).all()]


def find_catalog_row(session: Session, *, name: str) -> Catalog | None:
    return session.exec(select(Catalog).where(Catalog.name == name)).first()


def get_catalog_row(session: Session, *, name: str) -> Catalog:
    c = find_catalog_row(session, name=name)
    if c is None:
        raise NotFound(f"no catalog named {name!r}")
    return c


def get_catalog(session: Session, *, name: str) -> CatalogRead:
    return catalog_read(get_catalog_row(session, name=name))


def delete_catalog(engine: Engine, *, name: str) -> None:
    with transaction(engine) as session:
        c = get_catalog_row(session, name=name)
        changed(session, Change("catalog_delete", domain=c.domain, catalog=name))
        session.execute(delete(Catalog).where(col(Catalog.id) == c.id))
    caches_of(engine).clear()


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
