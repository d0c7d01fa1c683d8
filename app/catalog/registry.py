"""format_id → importer: the built-ins in a dict you can read, then `kbmap.importers` plugins.

A broken plugin or a duplicate format id is an error, not a log line. `detect()` asks each
importer to sniff in a fixed order and refuses an input that none or several claim. Built-ins
are named as "module:class", the way a plugin's entry point names its class, and imported on
first use: `kbmap --help` lists the format ids without importing a parser.

A new format is one file in app/catalog/formats/ (or a plugin's package) holding a class with:

- `format_id`, `title`, `file_patterns`: what it is called and which files it reads;
- `sniff(source) -> bool`: cheap recognition, for `--format auto`;
- `parse(source, limits) -> ParsedCatalog`: pure, every problem an Issue, no rule dropped
  silently (optionally `start(source, limits) -> Pending[ParsedCatalog]` to parse in the
  background);
- `telemetry`: a FormatTelemetry (app/catalog/telemetry.py), or None: the log-source entry keys
  its rules carry (ParsedRule.log_sources), its section of the log-source tables with a loader
  that checks it, and the Reader that matches an entry against it. A built-in's section sits in
  kb/mappings/log-sources.yaml under its own top-level key; a plugin names its own YAML file.

A built-in is then one line in BUILTINS; a plugin is an entry point in the `kbmap.importers`
group naming the class.
"""

from __future__ import annotations

from functools import lru_cache, partial
from importlib import import_module
from typing import TYPE_CHECKING

from app.core.errors import InvalidInput, KbmapError, Location

if TYPE_CHECKING:
    from app.catalog.base import CatalogSource, Importer, ParsedCatalog
    from app.catalog.parallel import Pending
    from app.catalog.telemetry import FormatTelemetry
    from app.core.config import Limits

BUILTINS: dict[str, str] = {
    "maxpatrol-xp": "app.catalog.formats.maxpatrol_xp:MaxPatrolXPImporter",
    "sigma": "app.catalog.formats.sigma:SigmaImporter",
    "elastic": "app.catalog.formats.elastic:ElasticImporter",
    "splunk": "app.catalog.formats.splunk:SplunkImporter",
    "sentinel": "app.catalog.formats.sentinel:SentinelImporter",
    "dettect-techniques": "app.catalog.formats.dettect_techniques:DettectTechniquesImporter",
    "canonical": "app.catalog.formats.canonical:CanonicalImporter",
    "stix": "app.catalog.formats.stix:StixImporter",
}
ENTRY_POINT_GROUP = "kbmap.importers"


class PluginError(KbmapError):
    code = "plugin_error"
    status = 500


def _builtin(spec: str) -> Importer:
    module, _, name = spec.partition(":")
    importer: Importer = getattr(import_module(module), name)()
    return importer


@lru_cache(maxsize=1)
def importers() -> dict[str, Importer]:
    """Every importer, built-ins first; fails loudly on a broken or clashing plugin. Cached:
    the table is configuration (what is installed), fixed for the life of the process."""
    from importlib.metadata import entry_points  # reads package metadata: not at help time

    found: dict[str, Importer] = {fid: _builtin(spec) for fid, spec in BUILTINS.items()}
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


def telemetry() -> list[FormatTelemetry]:
    """What each importer brings to log-source linking, in registry order."""
    found = (getattr(imp, "telemetry", None) for imp in importers().values())
    return [t for t in found if t is not None]


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
    from app.catalog.parallel import Pending

    importer = detect(source) if format_id == "auto" else get_importer(format_id)
    start = getattr(importer, "start", None)  # an importer that can parse in the background
    if start is not None:
        pending: Pending[ParsedCatalog] = start(source, limits)
        return pending
    return Pending(partial(importer.parse, source, limits))
