"""kbmap's own catalog format, for vendors whose rules exist only as a list.

One file in one of four spellings (docs/catalog-format.md): a YAML or JSON document
`{name, vendor, ..., rules: [...]}`, a CSV table with one rule per row, or the plain line form of
a vendor's knowledge-base page (`<package>: <id>: <name>: <title>` under `Txxxx: Name` headings).
Documents are checked against the semantics of kb/schemas/canonical-catalog.schema.json in code,
so no schema engine is needed at run time; unknown fields are warnings (kept in `extra`),
everything else wrong is an error.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any, ClassVar

from app.catalog.base import CatalogSource, ParsedCatalog, ParsedRule
from app.catalog.export import ESCAPED_LINE, FORMULA_PREFIX
from app.catalog.formats._common import (
    check_rule_count,
    decode,
    error,
    json_rule_lines,
    looks_like_sigma,
    opt_str,
    report_duplicates,
    str_list,
    warning,
    yaml_rule_lines,
)
from app.catalog.telemetry import FormatTelemetry, Hit, LogSourceMap
from app.core.bounded_yaml import load_yaml_documents
from app.core.config import Limits
from app.core.errors import InvalidInput, Issue
from app.core.limits import json_depth_ok, loads_json

CATALOG_FIELDS = ("name", "vendor", "product", "version", "attack", "rules")
TEXT_FIELDS = ("name", "title", "description", "package", "severity", "status")
LIST_FIELDS = ("techniques", "tactics", "data_sources", "platforms", "references")
RULE_FIELDS = ("id", *TEXT_FIELDS, *LIST_FIELDS, "enabled", "body")
META_KEYS = ("name", "vendor", "product", "version", "attack.domain", "attack.version")
ATTACK_DOMAINS = ("enterprise", "mobile", "ics")

TECHNIQUE = re.compile(r"^[Tt]\d{4}(?:\.\d{3})?(?:@[A-Za-z0-9][A-Za-z0-9 _-]*)?$")
ATTACK_VERSION = re.compile(r"^\d+(?:\.\d+)?$")
HEADING = re.compile(r"^\s*(T\d{4}(?:\.\d{3})?)\s*:\s*\S")
PACKAGE = re.compile(r"^[A-Za-z0-9_.-]+$")
RULE_ID = re.compile(r"^(?=[^\s]*\d)[A-Za-z0-9][A-Za-z0-9_.-]*$")
META_LINE = re.compile(r"^#\s*([A-Za-z_][\w.]*)\s*:\s*(.*?)\s*$")
YAML_RULES = re.compile(rb"^rules[ \t]*:", re.M)
JSON_RULES = re.compile(rb'"rules"\s*:\s*\[')
RULE_LINE = re.compile(
    rb"^[ \t]*[A-Za-z0-9_.-]+[ \t]*:[ \t]*(?=[^:\s]*\d)[A-Za-z0-9][A-Za-z0-9_.-]*[ \t]*:[^:\n]*:",
    re.M,
)
LIST_TOKEN = re.compile(r"\\(.)|(;)|([^\\;]+)", re.S)
TRUE = {"true", "yes", "y", "1"}
FALSE = {"false", "no", "n", "0"}


class _FreeText:
    """A `data_sources` text: "Provider:EventID", a channel, a data-source name (read as the
    formats that write `data_source` read it) or a data-component name ("Process: Process
    Creation"); the canonical format has no section of its own."""

    def hits(self, e: dict[str, str], raw: dict[str, str], t: LogSourceMap) -> list[Hit]:
        text, original = e["text"], raw["text"]
        source, _, event_id = text.rpartition(":")
        hit = t.channel_hit(source.strip(), event_id.strip()) if source else None
        hit = hit or t.channel_hit(text, None) or t.first_hit("data_source", text, original)
        if hit is None and (name := t.components.get(text.rpartition(": ")[2])):
            hit = Hit(f"text:{original}", (name,))
        return [hit] if hit else []


class CanonicalImporter:
    """The canonical format: the one a person writes by hand or exports from a spreadsheet."""

    format_id: ClassVar[str] = "canonical"
    title: ClassVar[str] = "kbmap canonical catalog (YAML, JSON, CSV or line text)"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.yaml", "*.yml", "*.json", "*.csv", "*.txt")
    telemetry: ClassVar[FormatTelemetry] = FormatTelemetry(
        frozenset({"text"}), lambda ld, value, t: _FreeText()
    )

    def sniff(self, source: CatalogSource) -> bool:
        """One file whose first bytes show a `rules` list or rule lines, or any one `.csv`."""
        if source.is_tree:
            return False
        files = source.files()
        if len(files) != 1:
            return False
        name = files[0][0].lower()
        head = source.head(65536)
        if name.endswith((".yaml", ".yml")):
            return bool(YAML_RULES.search(head)) and not looks_like_sigma(head)
        if name.endswith(".json"):
            return head.lstrip()[:1] == b"{" and bool(JSON_RULES.search(head))
        if name.endswith(".csv"):  # no other format reads CSV: parse names a missing id column
            return True
        if name.endswith(".txt"):
            return bool(RULE_LINE.search(head))
        return False

    def parse(self, source: CatalogSource, limits: Limits) -> ParsedCatalog:
        """Read the one file in whichever spelling its name (or first character) says."""
        issues: list[Issue] = []
        cat = ParsedCatalog(format_id=self.format_id, rules=[], issues=issues)
        files = source.files()
        if len(files) != 1:
            issues.append(
                error(f"a canonical catalog is one file, found {len(files)}", source.name)
            )
            return cat
        path, data = files[0]
        cat.files_read = 1
        text = decode(data, path, issues)
        if text is None:
            return cat
        kind = _kind(path, text)
        if kind == "csv":
            _parse_csv(text, path, cat)
        elif kind == "lines":
            _parse_lines(text, path, cat)
        else:
            _parse_document(text, path, kind, limits, cat)
        check_rule_count(len(cat.rules), limits, source.name)
        if kind != "lines":  # in the line form a repeated id adds a technique (the seed's layout)
            report_duplicates(cat.rules, issues)
        return cat


def _kind(path: str, text: str) -> str:
    lower = path.lower()
    for suffix, kind in ((".json", "json"), (".csv", "csv"), (".yaml", "yaml"), (".yml", "yaml")):
        if lower.endswith(suffix):
            return kind
    if text.lstrip()[:1] == "{":
        return "json"
    if re.search(r"^rules[ \t]*:", text, re.M):
        return "yaml"
    return "lines"


# --- YAML and JSON documents -------------------------------------------------------------------


def _parse_document(text: str, path: str, kind: str, limits: Limits, cat: ParsedCatalog) -> None:
    issues = cat.issues
    try:
        if kind == "json":
            docs = [loads_json(text, name=path)]
        else:
            docs = load_yaml_documents(text, name=path, max_aliases=limits.max_yaml_aliases)
    except InvalidInput as exc:
        issues.append(Issue(exc.message, exc.location, severity="error"))
        return
    docs = [d for d in docs if d is not None]
    if not docs:
        issues.append(error("the document is empty", path, fld="rules"))
        return
    if len(docs) > 1:
        issues.append(error(f"one document expected, found {len(docs)}", path))
    doc = docs[0]
    if not json_depth_ok(doc, limits.max_json_depth):
        issues.append(error(f"nesting is deeper than {limits.max_json_depth} levels", path))
        return
    top, items = yaml_rule_lines(text) if kind == "yaml" else json_rule_lines(text, doc)
    _read_catalog(doc, path, top, items, cat)


def _read_catalog(
    doc: Any,
    path: str,
    top: dict[str, int],
    items: list[tuple[int, dict[str, int]]],
    cat: ParsedCatalog,
) -> None:
    issues = cat.issues
    if not isinstance(doc, dict):
        issues.append(error("a catalog is a mapping with a `rules` list", path, 1))
        return
    for key in doc:
        if key not in CATALOG_FIELDS and not str(key).startswith("x-"):
            issues.append(
                warning(f"unknown catalog field {key!r} ignored", path, top.get(key), str(key))
            )
    cat.name = opt_str(doc.get("name"), issues, path, top.get("name"), "name", strict=True)
    cat.vendor = opt_str(doc.get("vendor"), issues, path, top.get("vendor"), "vendor", strict=True)
    cat.product = opt_str(
        doc.get("product"), issues, path, top.get("product"), "product", strict=True
    )
    cat.version = _version(doc.get("version"), issues, path, top.get("version"), "version")
    if "attack" in doc:
        _read_attack(doc["attack"], path, top.get("attack"), cat)
    rules = doc.get("rules")
    if not isinstance(rules, list):
        problem = "missing required field rules" if rules is None else "rules must be a list"
        issues.append(error(problem, path, top.get("rules"), "rules"))
        return
    for i, item in enumerate(rules):
        line, keys = items[i] if i < len(items) else (0, {})
        where = _Where(path, line or None, keys, f"rules[{i}]")
        if not isinstance(item, dict):
            issues.append(error("a rule is a mapping of fields", path, where.line, where.prefix))
            continue
        rule = _make_rule(item, where, issues)
        if rule is not None:
            cat.rules.append(rule)


def _read_attack(value: Any, path: str, line: int | None, cat: ParsedCatalog) -> None:
    issues = cat.issues
    if not isinstance(value, dict):
        issues.append(error("attack must be a mapping {domain, version}", path, line, "attack"))
        return
    for key in value:
        if key not in ("domain", "version"):
            issues.append(warning(f"unknown field attack.{key} ignored", path, line, "attack"))
    _set_attack(cat, "attack.domain", value.get("domain"), path, line)
    _set_attack(cat, "attack.version", value.get("version"), path, line)


def _set_attack(cat: ParsedCatalog, key: str, value: Any, path: str, line: int | None) -> None:
    issues = cat.issues
    if key == "attack.domain":
        domain = opt_str(value, issues, path, line, key)
        if domain is not None and domain not in ATTACK_DOMAINS:
            issues.append(
                error(f"{key} must be one of {', '.join(ATTACK_DOMAINS)}", path, line, key)
            )
        cat.attack_domain = domain
        return
    version = _version(value, issues, path, line, key)
    if version is not None and not ATTACK_VERSION.match(version):
        issues.append(error(f'{key} must look like "18.1", not {version!r}', path, line, key))
    cat.attack_version = version


def _version(value: Any, issues: list[Issue], path: str, line: int | None, fld: str) -> str | None:
    """Versions are text: YAML would read an unquoted 17.10 as the number 17.1."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        issues.append(error(f'{fld} must be a string; quote it ("{value}")', path, line, fld))
        return str(value)
    return opt_str(value, issues, path, line, fld)


class _Where:
    """Where a rule's fields sit, so each problem names its own line where one is known."""

    def __init__(self, path: str, line: int | None, keys: dict[str, int], prefix: str) -> None:
        self.path, self.line, self.keys, self.prefix = path, line, keys, prefix

    def at(self, key: str) -> tuple[str, int | None, str]:
        return self.path, self.keys.get(key, self.line), f"{self.prefix}.{key}".lstrip(".")


def _make_rule(
    values: dict[str, Any], where: _Where, issues: list[Issue], *, warn_unknown: bool = True
) -> ParsedRule | None:
    """One rule from its fields (document mapping or CSV row); None only after an id error."""
    rid = values.get("id")
    if isinstance(rid, int) and not isinstance(rid, bool):
        rid = str(rid)
    if not isinstance(rid, str) or not rid.strip():
        problem = "missing required field id" if rid in (None, "") else "id must be a string"
        issues.append(error(problem, *where.at("id")))
        return None
    rule = ParsedRule(rule_id=rid.strip(), path=where.path, line=where.line)
    for key, value in values.items():
        if key not in RULE_FIELDS:
            if warn_unknown and not str(key).startswith("x-"):
                issues.append(warning(f"unknown rule field {key!r} kept in extra", *where.at(key)))
            rule.extra[str(key)] = value
    for key in TEXT_FIELDS:
        text = opt_str(values.get(key), issues, *where.at(key), strict=True)
        setattr(rule, key, (text or "") if key in ("name", "title", "description") else text)
    lists = {
        key: str_list(values.get(key), issues, *where.at(key), strict=True) for key in LIST_FIELDS
    }
    rule.techniques = lists["techniques"]
    rule.tactics = lists["tactics"]
    rule.log_sources = [{"text": s} for s in lists["data_sources"]]
    rule.platforms = lists["platforms"]
    rule.references = lists["references"]
    for ref in rule.techniques:
        if not TECHNIQUE.match(ref):
            message = f"technique {ref!r} is not Txxxx or Txxxx.xxx (optionally @tactic)"
            issues.append(error(message, *where.at("techniques")))
    body = values.get("body")  # the rule in its own language: kept exactly, never stripped
    if body is not None and not isinstance(body, str):
        issues.append(error("body must be a string", *where.at("body")))
    elif body:
        rule.body = body
    enabled = values.get("enabled", True)
    if not isinstance(enabled, bool):
        issues.append(error("enabled must be true or false", *where.at("enabled")))
    else:
        rule.enabled = enabled
    return rule


# --- CSV -----------------------------------------------------------------------------------------


def _parse_csv(text: str, path: str, cat: ParsedCatalog) -> None:
    """A header row of rule field names, then one rule per row; `;` separates list cells."""
    issues = cat.issues
    lines = io.StringIO(text, newline="").readlines()
    start, exported = _read_metadata(lines, path, cat)
    reader = csv.reader(lines[start:], strict=True)
    header: list[str] | None = None
    row_start = start + 1
    try:
        for row in reader:
            line, row_start = row_start, start + reader.line_num + 1
            if header is None:
                header = [c.strip().lower() for c in row]
                if not _check_header(header, path, line, issues):
                    return
                continue
            if not any(c.strip() for c in row):
                continue
            _check_width(header, row, path, line, issues)
            values = _row_values(header, row, path, line, issues, exported)
            rule = _make_rule(values, _Where(path, line, {}, ""), issues, warn_unknown=False)
            if rule is not None:
                cat.rules.append(rule)
    except csv.Error as exc:
        issues.append(error(f"invalid CSV: {exc}", path, start + reader.line_num))
        return
    if header is None:
        issues.append(error("no header row (a CSV catalog starts with field names)", path, 1))


def _check_width(
    header: list[str], row: list[str], path: str, line: int, issues: list[Issue]
) -> None:
    """Extra filled cells are an error (a shifted row); missing ones a warning, left empty."""
    counts = f"row has {len(row)} cells, the header {len(header)}"
    if len(row) > len(header) and any(c.strip() for c in row[len(header) :]):
        issues.append(error(counts, path, line))
    elif len(row) < len(header):
        issues.append(warning(f"{counts}: {', '.join(header[len(row) :])} left empty", path, line))


def _check_header(header: list[str], path: str, line: int, issues: list[Issue]) -> bool:
    if "id" not in header:
        issues.append(error("missing required column id", path, line, "id"))
        return False
    ok = True
    for i, name in enumerate(header):
        if name in header[:i]:
            issues.append(error(f"column {name!r} appears twice", path, line, name))
            ok = False
        elif name not in RULE_FIELDS and not name.startswith("x-"):
            issues.append(warning(f"unknown column {name!r} kept in extra", path, line, name))
    return ok


def _row_values(
    header: list[str], row: list[str], path: str, line: int, issues: list[Issue], exported: bool
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, cell in zip(header, row, strict=False):
        cell = cell.strip()
        if not cell:
            continue
        if name in LIST_FIELDS:
            values[name] = _list_items(cell, exported)
        elif name == "enabled":
            if cell.lower() in TRUE | FALSE:
                values[name] = cell.lower() in TRUE
            else:
                issues.append(
                    error(f"enabled must be true or false, not {cell!r}", path, line, name)
                )
        else:
            values[name] = _unprefixed(cell, exported)
    return values


def _read_metadata(lines: list[str], path: str, cat: ParsedCatalog) -> tuple[int, bool]:
    """`# key: value` lines at the top (quoted or not) set catalog fields; returns the first line
    after them, and whether the file says it is an export (`ESCAPED_LINE`)."""
    exported = False
    for i, raw in enumerate(lines):
        stripped = raw.strip()
        if stripped.startswith('"#'):  # a quoted comment cell, as export writes them
            stripped = next(csv.reader([stripped]), [""])[0].strip()
        if stripped and not stripped.startswith("#"):
            return i, exported
        m = META_LINE.match(stripped)
        if not m:
            continue
        key, value = m.group(1).lower(), m.group(2) or None
        if (key, value) == ESCAPED_LINE:
            exported = True
        elif key.startswith("attack."):
            _set_attack(cat, key, value, path, i + 1)
        elif key in META_KEYS:
            setattr(cat, key, value)
        else:
            cat.issues.append(warning(f"unknown catalog field {key!r} ignored", path, i + 1, key))
    return len(lines), exported


def _unprefixed(cell: str, exported: bool) -> str:
    """A cell without the `'` export put before formula-like text (only in an export)."""
    return cell.removeprefix(FORMULA_PREFIX) if exported else cell


def _list_items(cell: str, exported: bool) -> list[str]:
    """A `;` list cell; in an export, `\\;` and `\\\\` are an item's own `;` and `\\`."""
    if not exported:
        return [p.strip() for p in cell.split(";") if p.strip()]
    items: list[str] = []
    current: list[str] = []
    for escaped, sep, text in LIST_TOKEN.findall(cell):
        if sep:
            items.append("".join(current))
            current = []
        else:
            current.append(escaped or text)
    items.append("".join(current))
    return [_unprefixed(p.strip(), True) for p in items if p.strip()]


# --- the line form -------------------------------------------------------------------------------


def _parse_lines(text: str, path: str, cat: ParsedCatalog) -> None:
    """Technique headings, then `<package>: <id>: <name>: <title>` lines; other text is ignored."""
    issues = cat.issues
    lines = text.splitlines()
    _read_metadata(lines, path, cat)
    by_id: dict[str, ParsedRule] = {}
    technique: str | None = None
    for n, raw in enumerate(lines, start=1):
        heading = HEADING.match(raw)
        if heading:
            technique = heading.group(1)
            continue
        parts = [p.strip() for p in raw.split(":")]
        if len(parts) < 4 or not PACKAGE.match(parts[0]) or not RULE_ID.match(parts[1]):
            continue
        package, rid, name, title = parts[0], parts[1], parts[2], raw.split(":", 3)[3].strip()
        rule = by_id.get(rid)
        if rule is None:
            rule = ParsedRule(
                rule_id=rid, name=name, title=title, package=package, path=path, line=n
            )
            by_id[rid] = rule
            cat.rules.append(rule)
        elif (rule.package, rule.name, rule.title) != (package, name, title):
            message = f"rule {rid} listed again with other text (first at line {rule.line})"
            issues.append(warning(message, path, n))
        if technique is None:
            issues.append(warning(f"rule {rid} is not under a technique heading", path, n))
        elif technique not in rule.techniques:
            rule.techniques.append(technique)
    if not cat.rules:
        issues.append(error("no rule lines (`<package>: <id>: <name>: <title>`) found", path))
