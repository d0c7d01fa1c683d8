"""The field checkers and bounds every environment format shares: each problem collected with
the field and line it sits in, so one import reports them all at once."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from app.core.bounded_yaml import load_yaml_documents, yaml_text
from app.core.config import Limits
from app.core.errors import InvalidInput, Issue, Location
from app.core.limits import json_depth_ok, loads_json
from app.environment.models import (
    ALL_SYSTEMS,
    QUALITY_DIMENSIONS,
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


def domain_name(c: Collector, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value in DOMAINS:
        return value
    c.error(f"unknown domain {value!r:.40}; known: {', '.join(DOMAINS)}", None, "domain")
    return None


def log_source_entry(
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
    what = source_kind(c, raw, fld, line)
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


def source_kind(c: Collector, raw: dict[str, Any], fld: str, line: int | None) -> Any:
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
