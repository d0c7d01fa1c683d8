"""Pure: a canonical catalog document → YAML, JSON or CSV bytes (the formats it imports from)."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import yaml

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
MEDIA = {"yaml": "application/yaml", "json": "application/json", "csv": "text/csv"}


def render(doc: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    if fmt == "yaml":
        return yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True).encode()
    if fmt == "csv":
        return _csv(doc)
    raise ValueError(fmt)


def _csv(doc: dict[str, Any]) -> bytes:
    out = io.StringIO()
    for key in ("name", "vendor", "product", "version"):
        if doc.get(key):
            out.write(f"# {key}: {doc[key]}\n")
    if doc.get("attack"):
        out.write(f"# attack.domain: {doc['attack']['domain']}\n")
        out.write(f"# attack.version: {doc['attack']['version']}\n")
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for rule in doc.get("rules", []):
        row = {k: ";".join(rule.get(k, [])) if k in MULTI else rule.get(k, "") for k in CSV_COLUMNS}
        row["enabled"] = "true" if rule.get("enabled", True) else "false"
        writer.writerow(row)
    return out.getvalue().encode()
