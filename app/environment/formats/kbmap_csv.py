"""kbmap's environment format as a CSV table: one row per log source, `# key: value` lines
before the header for the environment's own fields."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from app.core.errors import InvalidInput, Location
from app.environment.formats._fields import (
    CSV_COLUMNS,
    CSV_META,
    FALSE,
    KEY_VALUES,
    META_LINE,
    TRUE,
    Collector,
    check_duplicates,
    domain_name,
    log_source_entry,
    name_text,
    technique_id,
)
from app.environment.models import (
    QUALITY_DIMENSIONS,
    ParsedEnvironment,
    ParsedLogSource,
    ParsedSystem,
)


def parse_csv(name: str, text: str) -> ParsedEnvironment:
    """One row per log source (or per system declared without one); `# key: value` lines
    before the header carry name, domain, description and exceptions."""
    c = Collector(name, text)
    env = ParsedEnvironment(format_id="kbmap", systems=[], log_sources=[], issues=c.issues)
    lines = text.splitlines(keepends=True)
    skip = _csv_meta(c, env, lines)
    rows = csv.reader(io.StringIO("".join(lines[skip:])))
    header = next(rows, None)
    if header is None:
        raise InvalidInput("no CSV header row (system,platforms,...)", Location(name, skip + 1))
    columns = _csv_header(c, [h.strip().lower() for h in header], skip + 1)
    by_name: dict[str, ParsedSystem] = {}
    for row in rows:
        line = skip + rows.line_num
        if any(cell.strip() for cell in row):
            _csv_row(
                c, env, by_name, dict(zip(columns, (v.strip() for v in row), strict=False)), line
            )
    check_duplicates(c, env.systems, "system")
    return env


def _csv_meta(c: Collector, env: ParsedEnvironment, lines: list[str]) -> int:
    """Read the leading `# key: value` lines; return how many lines precede the header."""
    count = 0
    for count, raw in enumerate(lines):
        if not raw.startswith("#"):
            return count
        m = META_LINE.match(raw.rstrip("\r\n"))
        if m is None or m.group(1) not in CSV_META:
            c.error(
                f"a line before the header must be '# key: value' with key one of "
                f"{', '.join(CSV_META)}",
                count + 1,
            )
            continue
        _csv_meta_value(c, env, m.group(1), m.group(2), count + 1)
    return len(lines)


def _csv_meta_value(c: Collector, env: ParsedEnvironment, key: str, value: str, line: int) -> None:
    if key == "name":
        env.name = name_text(c, value, "name", line)
    elif key == "domain":
        env.domain = domain_name(c, value)
    elif key == "description":
        env.description = value
    else:
        ids = (technique_id(c, v, "exceptions", line) for v in _split(value))
        env.exceptions = [t for t in ids if t]


def _csv_header(c: Collector, header: list[str], line: int) -> list[str]:
    for column in header:
        if column not in CSV_COLUMNS:
            c.error(f"unknown column {column!r}; allowed: {', '.join(CSV_COLUMNS)}", line)
    if "system" not in header:
        raise InvalidInput("the CSV header has no 'system' column", Location(c.file, line))
    return header


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


def _csv_row(
    c: Collector,
    env: ParsedEnvironment,
    by_name: dict[str, ParsedSystem],
    row: dict[str, str],
    line: int,
) -> None:
    """One row: its system (declared by the first row naming it) and its log source, if any."""
    name = name_text(c, row.get("system", ""), "system", line)
    if name is None:
        return
    platforms = _split(row.get("platforms", ""))
    known = by_name.get(name)
    if known is None:
        if not platforms:
            c.error(f"platforms required on the first row of system {name!r}", line, "platforms")
        known = by_name[name] = ParsedSystem(name, platforms, line)
        env.systems.append(known)
    elif platforms and platforms != known.platforms:
        c.error(
            f"system {name!r} has platforms {known.platforms} on line {known.line}, "
            f"{platforms} here",
            line,
            "platforms",
        )
    entry = _csv_entry(c, row, name, line)
    if entry is not None:
        env.log_sources.append(entry)


def _csv_entry(c: Collector, row: dict[str, str], system: str, line: int) -> ParsedLogSource | None:
    """The row's log source in the document's shape, then checked by the document's rules."""
    rest = {k: v for k, v in row.items() if k not in ("system", "platforms") and v}
    if not rest:
        return None
    raw: dict[str, Any] = {k: rest[k] for k in ("data_component", "since", "comment") if k in rest}
    if "log_source" in rest:
        raw["log_source"] = _csv_log_source(rest["log_source"])
    if "products" in rest:
        raw["products"] = _split(rest["products"])
    if "available" in rest:
        raw["available"] = _csv_bool(c, rest["available"], line)
    scores = {d: _csv_int(rest[d]) for d in QUALITY_DIMENSIONS if d in rest}
    raw["quality"] = scores or None
    return log_source_entry(c, raw, "", system, line)


def _csv_log_source(cell: str) -> str | dict[str, str]:
    """`key=value;key=value` is a mapping of log-source keys; anything else is a text."""
    if not KEY_VALUES.match(cell):
        return cell
    pairs = (part.partition("=") for part in _split(cell))
    return {key.strip(): value.strip() for key, _, value in pairs}


def _csv_bool(c: Collector, cell: str, line: int) -> bool:
    if cell.lower() in TRUE or cell.lower() in FALSE:
        return cell.lower() in TRUE
    c.error(f"available must be true or false, not {cell!r:.40}", line, "available")
    return True


def _csv_int(cell: str) -> int | str:
    return int(cell) if re.fullmatch(r"[+-]?\d{1,3}", cell) else cell
