"""Pure: a canonical catalog document → YAML, JSON or CSV bytes (the formats it imports from);
the table of every export format (STIX too)."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

# light to import (no yaml, no settings): the CLI builds its help from EXPORTS

MULTI = ("techniques", "tactics", "data_sources", "platforms", "references")
CSV_COLUMNS = (
    "id",
    "name",
    "title",
    "description",
    "package",
    *MULTI,
    "severity",
    "status",
    "enabled",
)
# the first characters that make a spreadsheet cell a formula (OWASP), and the quote we add
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
FORMULA_PREFIX = "'"
# `# escaped: kbmap` says the file is an export: formula cells carry FORMULA_PREFIX, and list
# items escape `\` and `;` with a backslash, so an import can undo both exactly
ESCAPED_LINE = ("escaped", "kbmap")
MEDIA = {"yaml": "application/yaml", "json": "application/json", "csv": "text/csv"}
# every format an export writes, with its media type and file suffix: the one list the route,
# the CLI and their error message show (`stix` is built by stix_bundle.py, not `render`)
EXPORTS = {**MEDIA, "stix": "application/stix+json;version=2.1"}
SUFFIXES = {**{fmt: fmt for fmt in MEDIA}, "stix": "stix.json"}


def render(doc: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    if fmt == "yaml":
        import yaml

        return yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True).encode()
    if fmt == "csv":
        return _csv(doc)
    raise ValueError(fmt)


def _csv(doc: dict[str, Any]) -> bytes:
    """Every cell quoted (so commas, semicolons and line breaks never split a row, whatever a
    spreadsheet's separator) and formula-safe (`csv_cell`); `# key: value` lines first."""
    from app.catalog.base import CONTROL_CHARS

    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    meta = [(key, doc.get(key)) for key in ("name", "vendor", "product", "version")]
    if doc.get("attack"):
        meta += [(f"attack.{k}", doc["attack"][k]) for k in ("domain", "version")]
    meta.append(ESCAPED_LINE)
    for key, value in meta:
        if value:
            writer.writerow([f"# {key}: {CONTROL_CHARS.sub(' ', str(value))}"])
    writer.writerow(CSV_COLUMNS)
    for rule in doc.get("rules", []):
        row = [_csv_value(k, rule.get(k)) for k in CSV_COLUMNS]
        row[-1] = "true" if rule.get("enabled", True) else "false"
        writer.writerow(row)
    return out.getvalue().encode()


def _csv_value(key: str, value: Any) -> str:
    if key in MULTI:
        return ";".join(
            csv_cell(str(v).replace("\\", "\\\\").replace(";", "\\;")) for v in value or []
        )
    return csv_cell(str(value)) if value not in (None, "") else ""


def csv_cell(value: str) -> str:
    """OWASP's CSV-injection defence: text a spreadsheet would run as a formula gets a leading
    `'`. Text that already starts with `'` gets one too, so an importer that sees the file's
    `# escaped` line removes exactly one from every cell and the round trip is exact."""
    return FORMULA_PREFIX + value if value.startswith(FORMULA_STARTS) else value
