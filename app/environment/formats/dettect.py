"""DeTT&CT data-source administration files (versions 1.0 and 1.1), read unchanged.

Read the way DeTT&CT itself reads them (rabobank-cdc/DeTTECT `generic.load_data_sources`):
`applicable_to` and system names match case aside, `all` means every system, a `data_source` may
be one mapping or a list. A 1.0 file has no systems: its data sources apply to all of one system
whose platforms are the file's `platform` (DeTT&CT's `upgrade.py` 1.0 → 1.1 gives every data
source `applicable_to: [all]`). Keys DeTT&CT defines but kbmap does not use (`date_registered`)
are read past; keys neither knows are warnings, since the file is someone else's format.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from app.core.bounded_yaml import utf8_head, yaml_text
from app.core.config import Limits
from app.core.errors import InvalidInput, Location
from app.environment.formats._fields import (
    Collector,
    at,
    boolean,
    check_duplicates,
    iso_date,
    load_document,
    name_text,
    opt_text,
    quality,
    technique_id,
)
from app.environment.models import ALL_SYSTEMS, ParsedEnvironment, ParsedLogSource, ParsedSystem

FILE_TYPE = "data-source-administration"
VERSIONS = ("1.0", "1.1")
DOMAINS = {"enterprise-attack": "enterprise", "ics-attack": "ics", "mobile-attack": "mobile"}
TOP_KEYS = (
    "version",
    "file_type",
    "name",
    "domain",
    "platform",
    "systems",
    "data_sources",
    "exceptions",
    "notes",
)
SYSTEM_KEYS = ("applicable_to", "platform")
SOURCE_KEYS = ("data_source_name", "data_source")
DETAIL_KEYS = (
    "applicable_to",
    "date_registered",
    "date_connected",
    "products",
    "available_for_data_analytics",
    "comment",
    "data_quality",
)
V10_SYSTEM = "all systems"  # the one system a 1.0 file describes
SNIFF = re.compile(rb"^file_type[ \t]*:[ \t]*['\"]?data-source-administration", re.M)


class DettectFormat:
    """DeTT&CT's data-source administration file, so its users import what they already keep."""

    format_id: ClassVar[str] = "dettect"
    title: ClassVar[str] = "DeTT&CT data-source administration file (1.0, 1.1)"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.yaml", "*.yml")

    def sniff(self, name: str, data: bytes) -> bool:
        return SNIFF.search(utf8_head(data[:8192])) is not None

    def parse(self, name: str, data: bytes, limits: Limits) -> ParsedEnvironment:
        doc = load_document(name, data, limits, as_json=False)
        if doc.get("file_type") != FILE_TYPE:
            raise InvalidInput(
                f"not a DeTT&CT data-source administration file (file_type is "
                f"{doc.get('file_type')!r:.60}, expected {FILE_TYPE!r})",
                Location(name, field="file_type"),
            )
        return parse_dettect(doc, Collector(name, yaml_text(data, name=name)))


def parse_dettect(doc: dict[str, Any], c: Collector) -> ParsedEnvironment:
    """The file's systems, data sources and exceptions as kbmap's parsed environment."""
    for key in doc:
        if key not in TOP_KEYS:
            c.warning(f"key {key!r} is not a DeTT&CT data-source key; read past", None, str(key))
    version = _version(c, doc)
    env = ParsedEnvironment(format_id="dettect", systems=[], log_sources=[], issues=c.issues)
    env.name = (
        name_text(c, doc.get("name"), "name", c.line_of("name:", 1, move=False))
        if doc.get("name")
        else None
    )
    env.domain = _domain(c, doc.get("domain"))
    env.description = opt_text(c, doc.get("notes"), "notes", c.line_of("notes:", 1, move=False))
    env.exceptions = _exceptions(c, doc.get("exceptions"))
    env.systems = _systems(c, doc) if version == "1.1" else _v10_system(c, doc)
    check_duplicates(c, env.systems, "systems")
    names = {s.name.casefold(): s.name for s in env.systems}
    sources = doc.get("data_sources")
    if not isinstance(sources, list):
        c.error(
            "data_sources must be a list", c.line_of("data_sources", 1, move=False), "data_sources"
        )
        sources = []
    for i, raw in enumerate(sources):
        env.log_sources.extend(_data_source(c, raw, at("data_sources", i), names, version))
    return env


def _version(c: Collector, doc: dict[str, Any]) -> str:
    """1.0 or 1.1; a file without one is read by its shape (1.1 has `systems`)."""
    value = doc.get("version")
    if value is None:
        guess = "1.1" if "systems" in doc else "1.0"
        c.warning(f"no version; read as {guess}", None, "version")
        return guess
    text = (
        f"{value:.1f}"
        if isinstance(value, float | int) and not isinstance(value, bool)
        else str(value)
    )
    if text not in VERSIONS:
        c.error(f"unsupported version {value!r:.20}; known: {', '.join(VERSIONS)}", None, "version")
        return "1.1"
    return text


def _domain(c: Collector, value: Any) -> str:
    """DeTT&CT's domain names as kbmap's; DeTT&CT reads a file without one as enterprise."""
    if value is None:
        return "enterprise"
    if value in DOMAINS:
        return DOMAINS[value]
    c.error(f"unknown domain {value!r:.40}; known: {', '.join(DOMAINS)}", None, "domain")
    return "enterprise"


def _exceptions(c: Collector, value: Any) -> list[str]:
    """`exceptions: [{technique_id: T1557, name: ...}]`; an empty technique_id is skipped, as
    DeTT&CT skips it."""
    if value is None:
        return []
    if not isinstance(value, list):
        c.error("exceptions must be a list", None, "exceptions")
        return []
    out: list[str] = []
    for i, item in enumerate(value):
        fld = at("exceptions", i)
        if not isinstance(item, dict):
            c.error(f"{fld} must be a mapping with technique_id", None, fld)
        elif item.get("technique_id") is not None:
            tid = technique_id(c, item["technique_id"], at(fld, "technique_id"), None)
            out += [tid] if tid else []
    return out


def _platforms(c: Collector, value: Any, fld: str, line: int | None) -> list[str] | None:
    """A platform name or a list of them; None items are skipped, as DeTT&CT skips them."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(p, str | None) for p in items):
        c.error(f"{fld} must be a platform name or a list of them, not {value!r:.60}", line, fld)
        return None
    names = [p.strip() for p in items if p and p.strip()]
    if not names:
        c.error(f"{fld} names no platform", line, fld)
        return None
    return names


def _systems(c: Collector, doc: dict[str, Any]) -> list[ParsedSystem]:
    """1.1 systems; one named `all` is dropped with a warning, as DeTT&CT drops it."""
    raw = doc.get("systems")
    if not isinstance(raw, list):
        c.error(
            "systems must be a list (version 1.1)", c.line_of("systems", 1, move=False), "systems"
        )
        return []
    out: list[ParsedSystem] = []
    for i, item in enumerate(raw):
        system = _system(c, item, at("systems", i))
        if system is not None:
            out.append(system)
    return out


def _system(c: Collector, item: Any, fld: str) -> ParsedSystem | None:
    if not isinstance(item, dict):
        c.error(f"{fld} must be a mapping with applicable_to and platform", None, fld)
        return None
    line = c.line_of(f"applicable_to: {item.get('applicable_to')}")
    for key in item:
        if key not in SYSTEM_KEYS:
            c.warning(f"key {key!r} is not a DeTT&CT system key; read past", line, fld)
    name = name_text(c, item.get("applicable_to"), at(fld, "applicable_to"), line)
    platforms = _platforms(c, item.get("platform"), at(fld, "platform"), line)
    if name is not None and name.casefold() == ALL_SYSTEMS:
        c.warning("a system named 'all' is read past, as DeTT&CT reads it past", line, fld)
        return None
    return ParsedSystem(name, platforms, line) if name and platforms else None


def _v10_system(c: Collector, doc: dict[str, Any]) -> list[ParsedSystem]:
    """A 1.0 file's one system: the platforms of its `platform` key, else all."""
    if doc.get("platform") is None:
        return [ParsedSystem(V10_SYSTEM, [ALL_SYSTEMS], None)]
    platforms = _platforms(c, doc["platform"], "platform", c.line_of("platform", 1, move=False))
    return [
        ParsedSystem(V10_SYSTEM, platforms or [ALL_SYSTEMS], c.line_of("platform", 1, move=False))
    ]


def _data_source(
    c: Collector, raw: Any, fld: str, names: dict[str, str], version: str
) -> list[ParsedLogSource]:
    """One `data_source_name` with its details: one log source per details object (1.1), or
    the item itself as the details, applicable to all (1.0)."""
    if not isinstance(raw, dict):
        c.error(f"{fld} must be a mapping with data_source_name", None, fld)
        return []
    line = c.line_of(f"data_source_name: {raw.get('data_source_name')}")
    name = name_text(c, raw.get("data_source_name"), at(fld, "data_source_name"), line)
    if version == "1.0":
        details: Any = [
            {"applicable_to": [ALL_SYSTEMS]}
            | {k: v for k, v in raw.items() if k != "data_source_name"}
        ]
        fields: tuple[str, ...] = (*SOURCE_KEYS, *DETAIL_KEYS)
    else:
        details = raw.get("data_source")
        details = [details] if isinstance(details, dict) else details
        fields = SOURCE_KEYS
    for key in raw:
        if key not in fields:
            c.warning(f"key {key!r} is not a DeTT&CT data-source key; read past", line, fld)
    if not isinstance(details, list):
        c.error(f"{at(fld, 'data_source')} must be a mapping or a list of them", line, fld)
        return []
    out = (
        _details(c, d, at(at(fld, "data_source"), j), name or "?", names, line)
        for j, d in enumerate(details)
    )
    return [ls for ls in out if ls is not None and name is not None]


def _details(
    c: Collector, raw: Any, fld: str, name: str, names: dict[str, str], after: int | None
) -> ParsedLogSource | None:
    """One details object: where the data source is collected, since when, and how well."""
    if not isinstance(raw, dict):
        c.error(f"{fld} must be a mapping", after, fld)
        return None
    for key in raw:
        if key not in DETAIL_KEYS:
            c.warning(f"key {key!r} is not a DeTT&CT data-source key; read past", after, fld)
    systems = _applicable_to(c, raw.get("applicable_to"), at(fld, "applicable_to"), names, after)
    what = f"data source {name!r}"
    return ParsedLogSource(
        systems=systems,
        kind="data_component",
        value=name,
        since=iso_date(c, raw.get("date_connected"), at(fld, "date_connected"), after),
        products=_products(c, raw.get("products"), at(fld, "products"), after),
        quality=quality(c, raw.get("data_quality"), at(fld, "data_quality"), after, what),
        available=boolean(
            c,
            raw.get("available_for_data_analytics"),
            at(fld, "available_for_data_analytics"),
            after,
        ),
        comment=opt_text(c, raw.get("comment"), at(fld, "comment"), after),
        line=after,
    )


def _applicable_to(
    c: Collector, value: Any, fld: str, names: dict[str, str], line: int | None
) -> list[str]:
    """System names as the systems spell them; `all` is every system; a name no system has
    is an error naming it (coverage would silently lose the source)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(a, str | None) for a in items):
        c.error(f"{fld} must be a list of system names", line, fld)
        return []
    out: list[str] = []
    written = [a.strip() for a in items if a and a.strip()]
    for item in written:
        if item.casefold() == ALL_SYSTEMS:
            return [ALL_SYSTEMS]
        if item.casefold() not in names:
            known = ", ".join(sorted(names.values())) or "none"
            c.error(f"applicable_to {item!r} names no system; systems: {known}", line, fld)
        elif names[item.casefold()] not in out:
            out.append(names[item.casefold()])
    if not written:
        c.error(f"{fld} names no system", line, fld)
    return out


def _products(c: Collector, value: Any, fld: str, line: int | None) -> list[str]:
    """Product names; None items (DeTT&CT's template writes `[None]`) are skipped."""
    items = [value] if isinstance(value, str) else value
    if items is None:
        return []
    if not isinstance(items, list):
        c.error(f"{fld} must be a list of product names", line, fld)
        return []
    return [str(p).strip() for p in items if p is not None and str(p).strip()]
