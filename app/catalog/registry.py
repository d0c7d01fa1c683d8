"""format_id → importer: the built-ins in a dict you can read, then `kbmap.importers` plugins.

A broken plugin or a duplicate format id is an error, not a log line. `detect()` asks each
importer to sniff in a fixed order and refuses an input that none or several claim.
"""

from __future__ import annotations

from functools import lru_cache, partial
from importlib.metadata import entry_points

from app.catalog.base import CatalogSource, Importer, ParsedCatalog
from app.catalog.formats.canonical import CanonicalImporter
from app.catalog.formats.elastic import ElasticImporter
from app.catalog.formats.maxpatrol_xp import MaxPatrolXPImporter
from app.catalog.formats.sigma import SigmaImporter
from app.catalog.formats.splunk import SplunkImporter
from app.catalog.parallel import Pending
from app.core.config import Limits
from app.core.errors import InvalidInput, KbmapError, Location

BUILTINS: dict[str, type[Importer]] = {
    "maxpatrol-xp": MaxPatrolXPImporter,
    "sigma": SigmaImporter,
    "elastic": ElasticImporter,
    "splunk": SplunkImporter,
    "canonical": CanonicalImporter,
}
ENTRY_POINT_GROUP = "kbmap.importers"


class PluginError(KbmapError):
    code = "plugin_error"
    status = 500


@lru_cache(maxsize=1)
def importers() -> dict[str, Importer]:
    """Every importer, built-ins first; fails loudly on a broken or clashing plugin."""
    found: dict[str, Importer] = {fid: cls() for fid, cls in BUILTINS.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            instance = cls()
            fid = instance.format_id
        except Exception as exc:
            raise PluginError(f"catalog importer plugin {ep.name!r} failed to load: {exc}") from exc
        if fid in found:
            raise PluginError(f"catalog importer plugin {ep.name!r} reuses format id {fid!r}")
        found[fid] = instance
    return found


def get_importer(format_id: str) -> Importer:
    table = importers()
    if format_id not in table:
        raise InvalidInput(f"unknown catalog format {format_id!r}; known: {', '.join(table)}")
    return table[format_id]


def detect(source: CatalogSource) -> Importer:
    hits = [imp for imp in importers().values() if imp.sniff(source)]
    if len(hits) == 1:
        return hits[0]
    loc = Location(file=source.name)
    if not hits:
        raise InvalidInput(
            f"cannot tell the catalog format; pass --format ({', '.join(importers())})", loc
        )
    raise InvalidInput(
        f"several catalog formats claim this input ({', '.join(h.format_id for h in hits)}); "
        "pass --format",
        loc,
    )


def start_parse(source: CatalogSource, *, format_id: str, limits: Limits) -> Pending[ParsedCatalog]:
    """Detect or look up the format and begin the parse. Light to import (no database), so the
    CLI starts a large parse on the second core before it loads the database layers."""
    importer = detect(source) if format_id == "auto" else get_importer(format_id)
    start = getattr(importer, "start", None)  # an importer that can parse in the background
    if start is not None:
        pending: Pending[ParsedCatalog] = start(source, limits)
        return pending
    return Pending(partial(importer.parse, source, limits))
