"""kbmap's own environment format: one document in YAML or JSON, or a CSV table.

Strict on purpose: an environment decides what coverage counts, so a misspelt key (`log_sorce`)
is an error naming the allowed keys, never a silently empty system. kb/schemas/
environment.schema.json says the same for editors; the code checks it itself, so no schema engine
runs at import. The field checkers here are shared with the DeTT&CT reader (dettect.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from app.core.bounded_yaml import load_yaml_documents, utf8_head, yaml_text
from app.core.config import Limits
from app.core.errors import InvalidInput, Issue, Location
from app.core.limits import json_depth_ok, loads_json
from app.environment.models import (
    ALL_SYSTEMS,
    QUALITY_DIMENSIONS,
    ParsedEnvironment,
    ParsedLogSource,
    ParsedSystem,
)

TOP_KEYS = ("name", "domain", "description", "systems", "exceptions")
SYSTEM_KEYS = ("name", "platforms", "log_sources")
ENTRY_KEYS = (
    "data_component",
    "log_source",
    "since",
    "products",
    "quality",
    "available",
    "comment",
)
LOG_SOURCE_KEYS = (
    "product",
    "category",
    "service",
    "event_id",
    "provider",
    "channel",
    "index",
    "data_source",
    "text",
)
DOMAINS = ("enterprise", "mobile", "ics")
CSV_COLUMNS = (
    "system",
    "platforms",
    "data_component",
    "log_source",
    "since",
    "products",
    *QUALITY_DIMENSIONS,
    "available",
    "comment",
)
CSV_META = ("name", "domain", "description", "exceptions")
MAX_NAME_CHARS = 200
TECHNIQUE = re.compile(r"^T\d{4}(?:\.\d{3})?$")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
KEY_VALUES = re.compile(r"^\s*[A-Za-z_]\w*\s*=[^;]*(?:;\s*[A-Za-z_]\w*\s*=[^;]*)*;?\s*$")
META_LINE = re.compile(r"^#\s*([A-Za-z_]\w*)\s*:\s*(.*?)\s*$")
TRUE, FALSE = ("true", "yes", "y", "1"), ("false", "no", "n", "0")


class Collector:
    """Every problem of one file, each located, so a user fixes them all in one pass."""

    def __init__(self, file: str, text: str = "") -> None:
        self.file = file
        self.issues: list[Issue] = []
        self._lines = text.splitlines()
        self._cursor = 1

    def error(self, message: str, line: int | None = None, fld: str | None = None) -> None:
        self.issues.append(Issue(message, Location(self.file, line, fld or None)))

    def warning(self, message: str, line: int | None = None, fld: str | None = None) -> None:
        self.issues.append(Issue(message, Location(self.file, line, fld or None), "warning"))

    def line_of(self, needle: str, after: int | None = None, *, move: bool = True) -> int | None:
        """The first line at or after `after` (else after the last one found) holding `needle`:
        a best-effort line for values of a parsed document, which keeps no positions. Searches
        move forward as the document is walked, so a large file is scanned about once."""
        for index in range((after or self._cursor) - 1, len(self._lines)):
            if needle in self._lines[index]:
                self._cursor = index + 1 if move else self._cursor
                return index + 1
        return None


def at(fld: str, key: str | int) -> str:
    return f"{fld}[{key}]" if isinstance(key, int) else (f"{fld}.{key}" if fld else key)


def load_document(name: str, data: bytes, limits: Limits, *, as_json: bool) -> dict[str, Any]:
    """One mapping from YAML or JSON text, bounded in aliases and depth (any BOM accepted)."""
    text = yaml_text(data, name=name)
    if as_json:
        value = loads_json(text, name=name)
    else:
        docs = load_yaml_documents(text, name=name, max_aliases=limits.max_yaml_aliases)
        if len(docs) != 1:
            raise InvalidInput(f"expected one YAML document, found {len(docs)}", Location(name))
        value = docs[0]
    if not json_depth_ok(value, limits.max_json_depth):
        raise InvalidInput(f"nested deeper than {limits.max_json_depth} levels", Location(name))
    if not isinstance(value, dict):
        raise InvalidInput("the document must be a mapping of keys to values", Location(name))
    return value


def unknown_keys(
    c: Collector, raw: dict[Any, Any], allowed: Sequence[str], fld: str, line: int | None
) -> None:
    """Refuse keys the format does not define, naming the ones it does: a typo is never lost."""
    for key in raw:
        if key not in allowed:
            where = f" in {fld}" if fld else ""
            c.error(f"unknown key {key!r}{where}; allowed: {', '.join(allowed)}", line, fld)


def opt_text(c: Collector, value: Any, fld: str, line: int | None) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    c.error(f"{fld} must be text, not {type(value).__name__}", line, fld)
    return ""


def name_text(c: Collector, value: Any, fld: str, line: int | None) -> str | None:
    """A name shown in reports and pages: 1-200 characters, no control characters."""
    if not isinstance(value, str) or not value.strip():
        c.error(f"{fld} must be a non-empty text", line, fld)
        return None
    text: str = value.strip()
    if len(text) > MAX_NAME_CHARS:
        c.error(f"{fld} is longer than {MAX_NAME_CHARS} characters", line, fld)
        return None
    if CONTROL.search(text):
        c.error(f"{fld} contains control characters", line, fld)
        return None
    return text


def str_list(c: Collector, value: Any, fld: str, line: int | None) -> list[str] | None:
    """A list of non-empty texts (a single text is not a list: the schema says so too)."""
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
        return [v.strip() for v in value]
    c.error(f"{fld} must be a list of non-empty texts, not {value!r:.80}", line, fld)
    return None


def iso_date(c: Collector, value: Any, fld: str, line: int | None) -> str | None:
    """YAML dates and datetimes, and ISO texts, as YYYY-MM-DD (what `since` compares on)."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip()).date().isoformat()
        except ValueError:
            pass
    c.error(f"{fld} must be an ISO date (YYYY-MM-DD), not {value!r:.80}", line, fld)
    return None


def quality(
    c: Collector, value: Any, fld: str, line: int | None, what: str
) -> dict[str, int] | None:
    """DeTT&CT's data-quality dimensions, any subset, each an integer 0-5."""
    if value is None:
        return None
    if not isinstance(value, dict):
        c.error(f"{fld} of {what} must be a mapping of dimensions to 0-5", line, fld)
        return None
    unknown_keys(c, value, QUALITY_DIMENSIONS, fld, line)
    out: dict[str, int] = {}
    for dim in QUALITY_DIMENSIONS:
        score = value.get(dim)
        if score is None:
            continue
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 5:
            c.error(f"quality {dim} of {what} must be an integer 0-5, not {score!r:.40}", line, fld)
        else:
            out[dim] = score
    return out or None


def boolean(c: Collector, value: Any, fld: str, line: int | None) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    c.error(f"{fld} must be true or false, not {value!r:.40}", line, fld)
    return True


def technique_id(c: Collector, value: Any, fld: str, line: int | None) -> str | None:
    if isinstance(value, str) and TECHNIQUE.match(value.strip().upper()):
        return value.strip().upper()
    c.error(f"{fld} must be a technique id (T1234 or T1234.001), not {value!r:.40}", line, fld)
    return None


def log_source_value(c: Collector, value: Any, fld: str, line: int | None) -> Any:
    """A log source as a rule names it: a text, or a mapping of the keys rules carry (keys
    lower-cased, values texts: an event id written as a number becomes its digits)."""
    if isinstance(value, str) and value.strip():
        if CONTROL.search(value):
            c.error(f"{fld} contains control characters", line, fld)
        return value.strip()
    if not isinstance(value, dict) or not value:
        c.error(f"{fld} must be a text or a mapping of log-source keys", line, fld)
        return None
    out: dict[str, str] = {}
    for key, item in value.items():
        name = str(key).strip().lower()
        if name not in LOG_SOURCE_KEYS:
            c.error(
                f"unknown log-source key {key!r}; allowed: {', '.join(LOG_SOURCE_KEYS)}", line, fld
            )
        elif isinstance(item, bool) or not isinstance(item, str | int) or str(item).strip() == "":
            c.error(f"{at(fld, name)} must be a text or a number, not {item!r:.40}", line, fld)
        else:
            out[name] = str(item).strip()
    return out


def check_duplicates(c: Collector, systems: list[ParsedSystem], fld: str) -> None:
    """Refuse two systems of one name (case aside): log sources name systems by it."""
    seen: dict[str, str] = {}
    for system in systems:
        key = system.name.casefold()
        if key == ALL_SYSTEMS:
            c.error(
                f"system name {system.name!r} is reserved (it means every system)", system.line, fld
            )
        elif key in seen:
            c.error(f"duplicate system name {system.name!r}", system.line, fld)
        seen[key] = system.name


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
    env.domain = _domain(c, doc.get("domain"))
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


def _domain(c: Collector, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value in DOMAINS:
        return value
    c.error(f"unknown domain {value!r:.40}; known: {', '.join(DOMAINS)}", None, "domain")
    return None


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
        parsed = _entry(c, entry, at(at(fld, "log_sources"), j), name or "?", line)
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


def _entry(
    c: Collector, raw: Any, fld: str, system: str, after: int | None
) -> ParsedLogSource | None:
    """One collected log source: exactly one of data_component / log_source, then its
    optional since, products, quality, available and comment."""
    if not isinstance(raw, dict):
        c.error(f"{fld} must be a mapping (data_component or log_source, ...)", after, fld)
        return None
    shown = raw.get("data_component", raw.get("log_source"))
    line = (c.line_of(str(shown)) or after) if isinstance(shown, str | int) else after
    unknown_keys(c, raw, ENTRY_KEYS, fld, line)
    what = _what(c, raw, fld, line)
    if what is None:
        return None
    kind, value = what
    label = f"{value!r} on system {system!r}"
    return ParsedLogSource(
        systems=[system],
        kind=kind,
        value=value,
        since=iso_date(c, raw.get("since"), at(fld, "since"), line),
        products=str_list(c, raw.get("products"), at(fld, "products"), line) or [],
        quality=quality(c, raw.get("quality"), at(fld, "quality"), line, label),
        available=boolean(c, raw.get("available"), at(fld, "available"), line),
        comment=opt_text(c, raw.get("comment"), at(fld, "comment"), line),
        line=line,
    )


def _what(c: Collector, raw: dict[str, Any], fld: str, line: int | None) -> Any:
    """(kind, value), or None after an error: exactly one of the two ways to name a source."""
    has_dc, has_ls = raw.get("data_component") is not None, raw.get("log_source") is not None
    if has_dc == has_ls:
        c.error(f"{fld or 'a row'} needs exactly one of data_component, log_source", line, fld)
        return None
    if has_dc:
        value = name_text(c, raw["data_component"], at(fld, "data_component"), line)
        return None if value is None else ("data_component", value)
    value = log_source_value(c, raw["log_source"], at(fld, "log_source"), line)
    return None if not value else ("log_source", value)


# ---- the CSV table ----


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
        env.domain = _domain(c, value)
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
    return _entry(c, raw, "", system, line)


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
