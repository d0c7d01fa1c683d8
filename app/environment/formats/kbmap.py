"""kbmap's own environment format: one document in YAML or JSON, or a CSV table.

Strict on purpose: an environment decides what coverage counts, so a misspelt key (`log_sorce`)
is an error naming the allowed keys, never a silently empty system. kb/schemas/
environment.schema.json says the same for editors; the code checks it itself, so no schema engine
runs at import. The field checkers live in _fields.py (shared with dettect.py); the CSV table
in kbmap_csv.py.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from app.core.bounded_yaml import utf8_head, yaml_text
from app.core.config import Limits
from app.environment.formats._fields import (
    SYSTEM_KEYS,
    TOP_KEYS,
    Collector,
    at,
    check_duplicates,
    domain_name,
    load_document,
    log_source_entry,
    name_text,
    opt_text,
    str_list,
    technique_id,
    unknown_keys,
)
from app.environment.formats.kbmap_csv import parse_csv
from app.environment.models import (
    ParsedEnvironment,
    ParsedSystem,
)


class KbmapFormat:
    """kbmap's own format: a person writes it by hand or exports it from a spreadsheet."""

    format_id: ClassVar[str] = "kbmap"
    title: ClassVar[str] = "kbmap environment (YAML, JSON or CSV)"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.yaml", "*.yml", "*.json", "*.csv")

    def sniff(self, name: str, data: bytes) -> bool:
        return spelling(name, data) is not None

    def parse(self, name: str, data: bytes, limits: Limits) -> ParsedEnvironment:
        kind = spelling(name, data) or "yaml"
        if kind == "csv":
            return parse_csv(name, yaml_text(data, name=name))
        doc = load_document(name, data, limits, as_json=kind == "json")
        return parse_document(doc, Collector(name, yaml_text(data, name=name)))


def spelling(name: str, data: bytes) -> str | None:
    """yaml, json or csv: by suffix, else by content (a `{`, or a `system,...` header)."""
    suffix = name.rpartition(".")[2].lower() if "." in name else ""
    if suffix in ("yaml", "yml", "json", "csv"):
        return "yaml" if suffix == "yml" else suffix
    head = utf8_head(data[:4096]).decode("utf-8", "ignore").lstrip("\ufeff \t\r\n")
    if head.startswith("{"):
        return "json"
    first = next((ln for ln in head.splitlines() if ln.strip() and not ln.startswith("#")), "")
    if first.replace('"', "").lower().startswith("system,"):
        return "csv"
    return "yaml" if re.search(r"^systems\s*:", head, re.M) else None


# ---- the YAML / JSON document ----


def parse_document(doc: dict[str, Any], c: Collector) -> ParsedEnvironment:
    """The document's fields, every problem collected with the field it sits in."""
    unknown_keys(c, doc, TOP_KEYS, "", None)
    env = ParsedEnvironment(format_id="kbmap", systems=[], log_sources=[], issues=c.issues)
    if doc.get("name") is not None:
        env.name = name_text(c, doc["name"], "name", c.line_of("name", 1, move=False))
    env.domain = domain_name(c, doc.get("domain"))
    env.description = opt_text(c, doc.get("description"), "description", None)
    env.exceptions = _exceptions(c, doc.get("exceptions"))
    systems = doc.get("systems")
    if systems is not None and not isinstance(systems, list):
        c.error("systems must be a list of systems", c.line_of("systems", 1, move=False), "systems")
        systems = None
    for i, raw in enumerate(systems or []):
        _system(c, raw, at("systems", i), env)
    check_duplicates(c, env.systems, "systems")
    return env


def _exceptions(c: Collector, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        c.error("exceptions must be a list of technique ids", None, "exceptions")
        return []
    ids = (technique_id(c, v, at("exceptions", i), None) for i, v in enumerate(value))
    return [t for t in ids if t]


def _system(c: Collector, raw: Any, fld: str, env: ParsedEnvironment) -> None:
    """One system and its log sources; entries are checked even when the system's own fields
    are wrong, so one pass reports everything."""
    if not isinstance(raw, dict):
        c.error(f"{fld} must be a mapping with name, platforms, log_sources", None, fld)
        return
    line = c.line_of(str(raw.get("name"))) if raw.get("name") else None
    unknown_keys(c, raw, SYSTEM_KEYS, fld, line)
    name = name_text(c, raw.get("name"), at(fld, "name"), line)
    platforms = _platforms(c, raw.get("platforms"), at(fld, "platforms"), line)
    if name is not None and platforms is not None:
        env.systems.append(ParsedSystem(name, platforms, line))
    entries = raw.get("log_sources")
    if entries is not None and not isinstance(entries, list):
        c.error(f"{at(fld, 'log_sources')} must be a list", line, at(fld, "log_sources"))
        entries = None
    for j, entry in enumerate(entries or []):
        parsed = log_source_entry(c, entry, at(at(fld, "log_sources"), j), name or "?", line)
        if parsed is not None and name is not None:
            env.log_sources.append(parsed)


def _platforms(c: Collector, value: Any, fld: str, line: int | None) -> list[str] | None:
    if value is None:
        c.error(f"{fld} is required (ATT&CK platform names, or [all])", line, fld)
        return None
    names = str_list(c, value, fld, line)
    if names == []:
        c.error(f"{fld} must name at least one platform (or all)", line, fld)
        return None
    return names
