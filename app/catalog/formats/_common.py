"""Helpers the importers share, one copy each.

They exist so the formats report problems the same way: one Issue per problem, located by file,
line and field, errors for what rejects an import and warnings for what does not; and read
scalars and sniff each other's layouts alike.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

import orjson
import yaml

from app.catalog.base import ParsedRule
from app.core.config import Limits
from app.core.errors import Issue, Location, TooLarge

# a top-level YAML key at column 0 (`key:`); used for cheap sniffing and for line numbers
TOP_KEY = re.compile(r"^([A-Za-z_][\w.-]*)[ \t]*:", re.MULTILINE)
SIGMA_MARKERS = (re.compile(rb"^logsource[ \t]*:", re.M), re.compile(rb"^detection[ \t]*:", re.M))


def error(message: str, file: str | None, line: int | None = None, fld: str | None = None) -> Issue:
    return Issue(message, Location(file, line, fld), severity="error")


def warning(
    message: str, file: str | None, line: int | None = None, fld: str | None = None
) -> Issue:
    return Issue(message, Location(file, line, fld), severity="warning")


def decode(data: bytes, path: str, issues: list[Issue]) -> str | None:
    """UTF-8 text (a BOM is dropped); an undecodable file is one located error, not a crash."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        issues.append(error(f"not UTF-8 text (byte {exc.start})", path, line))
        return None


def looks_like_sigma(head: bytes) -> bool:
    """Sigma rules carry top-level `logsource:` and `detection:`; no other format here does."""
    return all(m.search(head) for m in SIGMA_MARKERS)


def is_xp_tree(paths: Iterable[str]) -> bool:
    """True when some folder has a metainfo.yaml next to a rule.co: a MaxPatrol XP tree, which
    the other tree formats leave alone."""
    names: dict[str, set[str]] = {}
    for path in paths:
        folder, _, name = path.rpartition("/")
        if name in ("metainfo.yaml", "rule.co"):
            inside = names.setdefault(folder, set())
            inside.add(name)
            if len(inside) == 2:
                return True
    return False


def scalar_text(value: Any, *, iso_dates: bool = True) -> str:
    """A YAML scalar as text; dates and times back in the ISO form they were written in
    (`iso_dates=False`: Python's str(), "2021-09-02 10:00:00", as the XP importer spells them)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if iso_dates and isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def scalar_list(value: Any, *, iso_dates: bool = True) -> list[str]:
    """A scalar or a list as texts, leniently: None items and nested mappings or lists are
    skipped (vendor formats; canonical's str_list reports them instead)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [
        scalar_text(v, iso_dates=iso_dates)
        for v in items
        if v is not None and not isinstance(v, (dict, list))
    ]


def add(items: list[str], value: str) -> None:
    """Append a non-empty value once, keeping first-seen order."""
    if value and value not in items:
        items.append(value)


def str_list(
    value: Any, issues: list[Issue], file: str, line: int | None, fld: str, *, strict: bool = False
) -> list[str]:
    """A string or a list of strings as a list; anything else is an error, never a silent [].

    `strict` refuses numbers too, as the canonical schema does; vendor formats are lenient.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    kinds = str if strict else str | int | float
    if isinstance(value, list) and all(isinstance(v, kinds) for v in value):
        return [str(v).strip() for v in value if str(v).strip()]
    issues.append(error(f"{fld} must be a list of strings", file, line, fld))
    return []


def opt_str(
    value: Any, issues: list[Issue], file: str, line: int | None, fld: str, *, strict: bool = False
) -> str | None:
    """A scalar field as text; a list or mapping where text belongs is an error (`strict`: a
    number too)."""
    if value is None:
        return None
    kinds = str if strict else str | int | float
    if isinstance(value, bool) or not isinstance(value, kinds):
        issues.append(error(f"{fld} must be a string", file, line, fld))
        return None
    return str(value).strip() or None


def top_key_lines(text: str) -> dict[str, int]:
    """Line of each column-0 `key:` in a YAML text (first occurrence), for issue locations."""
    lines: dict[str, int] = {}
    for m in TOP_KEY.finditer(text):
        lines.setdefault(m.group(1), text.count("\n", 0, m.start()) + 1)
    return lines


def yaml_rule_lines(text: str) -> tuple[dict[str, int], list[tuple[int, dict[str, int]]]]:
    """Lines of the top-level keys and of each `rules:` item and its keys.

    Called only after the bounded loader accepted the text; composing does not expand aliases and
    only two levels are walked, so this costs one more parse and nothing else.
    """
    try:
        node = next(iter(yaml.compose_all(text, Loader=yaml.CSafeLoader)), None)
    except yaml.YAMLError:
        return {}, []
    top: dict[str, int] = {}
    items: list[tuple[int, dict[str, int]]] = []
    if not isinstance(node, yaml.MappingNode):
        return top, items
    for key, value in node.value:
        top.setdefault(str(key.value), key.start_mark.line + 1)
        if key.value == "rules" and isinstance(value, yaml.SequenceNode):
            for item in value.value:
                keys: dict[str, int] = {}
                if isinstance(item, yaml.MappingNode):
                    for k, _ in item.value:
                        keys.setdefault(str(k.value), k.start_mark.line + 1)
                items.append((item.start_mark.line + 1, keys))
    return top, items


def json_rule_lines(text: str, doc: Any) -> tuple[dict[str, int], list[tuple[int, dict[str, int]]]]:
    """orjson keeps no positions: find each rule's `"id": <value>` in order in the text."""
    items: list[tuple[int, dict[str, int]]] = []
    rules = doc.get("rules") if isinstance(doc, dict) else None
    pos = 0
    for rule in rules if isinstance(rules, list) else []:
        rid = rule.get("id") if isinstance(rule, dict) else None
        m = None
        if isinstance(rid, str | int) and not isinstance(rid, bool):
            value = re.escape(orjson.dumps(rid).decode())
            m = re.compile(r'"id"\s*:\s*' + value + r"(?=\s*[,}])").search(text, pos)
        if m is None:
            items.append((0, {}))
            continue
        pos = m.end()
        items.append((text.count("\n", 0, m.start()) + 1, {}))
    return {}, items


def report_duplicates(rules: Iterable[ParsedRule], issues: list[Issue]) -> None:
    """A rule id is the key of a rule: a second rule with the same id is an error naming both."""
    first: dict[str, ParsedRule] = {}
    for rule in rules:
        seen = first.setdefault(rule.rule_id, rule)
        if seen is rule:
            continue
        where = seen.path or "?"
        if seen.line is not None:
            where += f" line {seen.line}"
        issues.append(
            error(
                f"duplicate rule id {rule.rule_id!r} (first at {where})", rule.path, rule.line, "id"
            )
        )


def check_rule_count(count: int, limits: Limits, name: str) -> None:
    """More rules than the configured bound is a 413 like any other oversized input."""
    if count > limits.max_rules:
        raise TooLarge(f"more than {limits.max_rules} rules", Location(file=name))


def rel_dir(path: str) -> str | None:
    """The folder a rule file sits in, inside the source (None at the top)."""
    parent = PurePosixPath(path).parent.as_posix()
    return None if parent in ("", ".") else parent


def stem(path: str) -> str:
    return PurePosixPath(path).stem


def plain(value: Any) -> Any:
    """Dates and times (TOML, unquoted YAML) become text, so a rule's `extra` stays JSON."""
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)
