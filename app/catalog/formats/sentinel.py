"""Microsoft Sentinel analytic rules: YAML files of github.com/Azure/Azure-Sentinel.

In a checkout (a folder or a .tar.gz) only `Solutions/<solution>/Analytic Rules/**` and
`Detections/**` are rule files; hunting queries, parsers, workbooks, playbooks and data connectors
are YAML too and are counted, not read. A file with an `id`, a `name`, no `query`, no `kind` is what
the repository leaves behind: a retired rule (kept as a disabled rule, never dropped) or, in
Detections/, a pointer to the rule's new home under Solutions/ (not a rule: counted in a
warning). Two full rules with one id: the Solutions/ one (else the first by path) wins and a
warning names both files, because the real repository carries such copies. Tactics are CamelCase
(`CommandAndControl`) and become ATT&CK short names; `dataTypes` (Log Analytics tables) link to
data components through the `sentinel` section of kb/mappings/log-sources.yaml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar

from app.catalog.base import CatalogSource, ParsedCatalog, ParsedRule
from app.catalog.formats._common import (
    check_rule_count,
    error,
    is_xp_tree,
    looks_like_sigma,
    opt_str,
    plain,
    rel_dir,
    stem,
    str_list,
    top_key_lines,
    warning,
)
from app.catalog.telemetry import FormatTelemetry, Hit, Loader, LogSourceMap
from app.core.bounded_yaml import load_yaml_documents, utf8_head, yaml_text
from app.core.config import Limits
from app.core.errors import InvalidInput, Issue

YAML_SUFFIXES = (".yml", ".yaml")
SNIFF_QUERY = re.compile(rb"^query[ \t]*:", re.M)
SNIFF_MARK = re.compile(
    rb"^(?:requiredDataConnectors|relevantTechniques|queryFrequency|kind)[ \t]*:", re.M
)
RULE_FOLDERS = frozenset({"analytic rules", "analytics rules"})
# Sentinel's AttackTactic values (Microsoft.SecurityInsights alertRules API) are ATT&CK's tactic
# names in CamelCase (`CommandAndControl`, ICS `InhibitResponseFunction`): their words, hyphened,
# are the short names. No table of tactics here: which exist is the release's to say (validation).
TACTIC_WORD = re.compile(r"[A-Z][a-z]*|[a-z]+")
TACTIC_NAME = re.compile(r"[A-Za-z][A-Za-z \-_]*")
SEVERITIES = frozenset({"informational", "low", "medium", "high", "critical"})
DEPRECATED_NAME = re.compile(r"^\s*\[deprecated\]|\[deprecated\]\s*$", re.I)
DISABLED_STATUSES = frozenset({"deprecated", "retired"})
MOVED = re.compile(r"moved to (?:a )?new location", re.I)
# `EventID == 4624` / `EventID in (4624, 4625)`: ids the query selects (not `!=`, `!in`)
EVENT_ID = re.compile(r"\bEventID\s*(?:==\s*(\d{1,5})\b|in\s*\(([\d\s,]+)\))")
EVENT_TABLE = "SecurityEvent"
TOP_EXTRAS = (
    "kind",
    "version",
    "queryFrequency",
    "queryPeriod",
    "triggerOperator",
    "triggerThreshold",
    "suppressionDuration",
    "suppressionEnabled",
    "tags",
)
NESTED_EXTRAS = ("eventGroupingSettings", "customDetails", "alertDetailsOverride", "metadata")
MAX_EXTRA_DEPTH = 8


@dataclass(frozen=True)
class SentinelLogSources:
    """Sentinel's part of the log-source tables (section `sentinel`): `data_types` (Log Analytics
    tables) and `event_tables` (a table of one Windows channel, whose event ids resolve through
    the neutral `events`). A connector alone links nothing: its tables say what is collected."""

    data_types: dict[str, Hit]
    event_tables: dict[str, str]  # table -> channel id

    @classmethod
    def load(cls, ld: Loader, value: Any, t: LogSourceMap) -> SentinelLogSources:
        sentinel = ld.mapping(value, "sentinel", {"data_types", "event_tables"})
        data_types = ld.table(sentinel.get("data_types"), "sentinel.data_types", "sentinel:")
        events = ld.mapping(sentinel.get("event_tables"), "sentinel.event_tables")
        if bad := [v for v in events.values() if v not in t.channels]:
            raise ld.fail("sentinel.event_tables", f"unknown channels {bad}")
        tables = {k.lower(): str(v) for k, v in events.items()}
        if bad := [k for k in tables if k not in data_types]:
            raise ld.fail("sentinel.event_tables", f"tables not in data_types {bad}")
        return cls(data_types, tables)

    def hits(self, e: dict[str, str], raw: dict[str, str], t: LogSourceMap) -> list[Hit]:
        table = e.get("data_type")
        if table is None:
            return []
        if "event_id" in e:
            cid = self.event_tables.get(table)
            hit = t.events.get((cid, e["event_id"])) if cid else None
            if hit is None:
                return []
            key = f"sentinel:{raw['data_type']}/{raw['event_id']}"
            return [Hit(key, hit.components, hit.analytics)]
        found = self.data_types.get(table)
        return [found] if found else []


class SentinelImporter:
    """An Azure-Sentinel checkout (folder or .tar.gz), any folder of its rule YAML, or one rule."""

    format_id: ClassVar[str] = "sentinel"
    title: ClassVar[str] = "Microsoft Sentinel analytic rules (YAML)"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.yaml", "*.yml")
    telemetry: ClassVar[FormatTelemetry] = FormatTelemetry(
        frozenset({"data_type", "event_id"}),
        SentinelLogSources.load,
        section="sentinel",
        report_key="data_type",
    )

    def sniff(self, source: CatalogSource) -> bool:
        """A YAML file with top-level `query:` and one of `requiredDataConnectors`,
        `relevantTechniques`, `queryFrequency`, `kind` (not Sigma); in a tree, the first 50
        rule files."""
        if not source.is_tree:
            files = source.files()
            single = len(files) == 1 and files[0][0].lower().endswith(YAML_SUFFIXES)
            return single and _is_rule(source.head(65536))
        files = source.files()
        if is_xp_tree(p for p, _ in files):
            return False
        rules, _ = _rule_files(files)
        return any(_is_rule(data[:65536]) for _, data in rules[:50])

    def parse(self, source: CatalogSource, limits: Limits) -> ParsedCatalog:
        """One rule per rule file; every problem an Issue with its file and line."""
        cat = ParsedCatalog(
            format_id=self.format_id,
            rules=[],
            vendor="Microsoft",
            product="Microsoft Sentinel",
        )
        rules, skipped = _rule_files(source.files())
        if skipped:
            cat.issues.append(warning(_skipped_message(skipped), source.name))
        reader = _Reader(cat, limits, known=not source.is_tree or skipped is not None)
        for path, data in rules:
            cat.files_read += 1
            reader.read(path, data)
            check_rule_count(len(cat.rules) + len(reader.stubs), limits, source.name)
        if not rules:
            cat.issues.append(error("no .yaml analytic rule files found", source.name))
        reader.finish()
        return cat


def _is_rule(data: bytes) -> bool:
    head = utf8_head(data)
    return (
        bool(SNIFF_QUERY.search(head))
        and bool(SNIFF_MARK.search(head))
        and not looks_like_sigma(head)
    )


def _place(path: str) -> str | None:
    """'solutions' or 'detections' for a rule file of the repository's layout, else None."""
    parts = PurePosixPath(path).parts[:-1]
    for i, part in enumerate(parts):
        if part == "Detections":
            return "detections"
        if part == "Solutions" and i + 2 < len(parts) and parts[i + 2].lower() in RULE_FOLDERS:
            return "solutions"
    return None


def _in_checkout(path: str) -> bool:
    """Cheap: `sniff` asks it of every file of any tree (4,002 of a Sigma one)."""
    folders = path.split("/")[:-1]  # source paths are relative POSIX paths
    return "Solutions" in folders or "Detections" in folders


def _rule_files(
    files: list[tuple[str, bytes]],
) -> tuple[list[tuple[str, bytes]], dict[str, int] | None]:
    """The rule files, Solutions/ first (its copy of a rule wins); in a checkout also the count
    of other YAML files per kind (None outside a checkout: every YAML file is read)."""
    ymls = [(p, d) for p, d in files if p.lower().endswith(YAML_SUFFIXES)]
    root = next((_root(p) for p, _ in ymls if _in_checkout(p)), None)
    if root is None:
        return ymls, None
    rules: list[tuple[str, bytes]] = []
    skipped: dict[str, int] = {}
    for path, data in ymls:
        if _place(path) is not None:
            rules.append((path, data))
        else:
            kind = _skipped_kind(PurePosixPath(path).parts[root:-1])
            skipped[kind] = skipped.get(kind, 0) + 1
    rules.sort(key=lambda item: (_place(item[0]) != "solutions", item[0]))
    return rules, skipped


def _root(path: str) -> int:
    """How many folders sit above Solutions/ or Detections/ (a tarball's top folder)."""
    parts = PurePosixPath(path).parts
    return min(parts.index(p) for p in ("Solutions", "Detections") if p in parts[:-1])


def _skipped_kind(folders: tuple[str, ...]) -> str:
    """What a skipped YAML file is, by its folder: 'Hunting Queries', 'Parsers', ..."""
    if len(folders) >= 3 and folders[0] == "Solutions":
        return folders[2]
    return folders[0] if folders else "(top level)"


def _skipped_message(skipped: dict[str, int]) -> str:
    top = sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0]))
    listed = ", ".join(f"{kind} {n}" for kind, n in top[:8])
    more = f", and {len(top) - 8} other kinds" if len(top) > 8 else ""
    return (
        f"{sum(skipped.values())} YAML files outside Solutions/*/Analytic Rules/ and "
        f"Detections/ are not analytic rules and were not read ({listed}{more})"
    )


@dataclass
class _Stub:
    """A rule file without a query: a retired rule, or a pointer left by the migration."""

    rule: ParsedRule
    moved: bool


class _Reader:
    """Reads rule files one by one into `cat`, keeping the first full rule of each id."""

    def __init__(self, cat: ParsedCatalog, limits: Limits, *, known: bool) -> None:
        self.cat, self.limits, self.known = cat, limits, known
        self.first: dict[str, ParsedRule] = {}
        self.stubs: list[_Stub] = []

    def read(self, path: str, data: bytes) -> None:
        doc, text = self._load(path, data)
        if doc is None:
            return
        lines = top_key_lines(text)
        issues = self.cat.issues
        rule_id = opt_str(doc.get("id"), issues, path, lines.get("id"), "id")
        title = opt_str(doc.get("name"), issues, path, lines.get("name"), "name")
        if title is None and "name" not in doc:
            issues.append(error("missing required field name", path, None, "name"))
        if rule_id is None:
            if doc.get("id") is None:
                issues.append(error("missing required field id", path, None, "id"))
            return
        rule = _build(rule_id, title or "", doc, lines, path, issues)
        if rule.body is None and "kind" not in doc:  # a Fusion / ML rule has a kind, no query
            self.stubs.append(_Stub(rule, bool(MOVED.search(rule.description))))
            return
        self._add(rule)

    def _load(self, path: str, data: bytes) -> tuple[dict[str, Any] | None, str]:
        issues = self.cat.issues
        try:
            text = yaml_text(data, name=path)
            docs = load_yaml_documents(text, name=path, max_aliases=self.limits.max_yaml_aliases)
        except InvalidInput as exc:
            issues.append(Issue(exc.message, exc.location, severity="error"))
            return None, ""
        docs = [d for d in docs if d is not None]
        if not docs:
            issues.append(warning("empty YAML file: no rule read", path))
            return None, text
        if len(docs) > 1:
            issues.append(warning(f"{len(docs)} YAML documents; only the first is read", path))
        if not isinstance(docs[0], dict):
            issues.append(error("an analytic rule is a mapping of fields", path, 1))
            return None, text
        if not self.known and "query" not in docs[0] and "id" not in docs[0]:
            issues.append(warning("no id and no query: not a Sentinel rule, not read", path))
            return None, text
        return docs[0], text

    def _add(self, rule: ParsedRule) -> None:
        seen = self.first.setdefault(rule.rule_id, rule)
        if seen is rule:
            self.cat.rules.append(rule)
            return
        self.cat.issues.append(
            warning(
                f"rule id {rule.rule_id!r} is also in {seen.path}, which is kept; "
                "this copy is not read",
                rule.path,
                rule.line,
                "id",
            )
        )

    def finish(self) -> None:
        """Stubs last. A pointer left by the migration is not a rule (its id is not its
        rule's): counted in one warning. A retired rule is kept, disabled, never lost."""
        pointers = [s.rule.path or "" for s in self.stubs if s.moved]
        for stub in (s for s in self.stubs if not s.moved):
            stub.rule.status, stub.rule.enabled = "deprecated", False
            stub.rule.extra["no_query"] = True
            self._add(stub.rule)
        if pointers:
            more = " ..." if len(pointers) > 3 else ""
            self.cat.issues.append(
                warning(
                    f"{len(pointers)} files are pointers left by the content migration (no "
                    f"query, 'moved to new location'), not rules: {', '.join(pointers[:3])}{more}",
                    None,
                )
            )


def _build(
    rule_id: str,
    title: str,
    doc: dict[str, Any],
    lines: dict[str, int],
    path: str,
    issues: list[Issue],
) -> ParsedRule:
    def at(key: str) -> tuple[str, int | None, str]:
        return path, lines.get(key), key

    status = opt_str(doc.get("status"), issues, *at("status"))
    query = _query(doc.get("query"), issues, *at("query"))
    rule = ParsedRule(
        rule_id=rule_id,
        name=stem(path),
        title=title,
        description=opt_str(doc.get("description"), issues, *at("description")) or "",
        package=rel_dir(path),
        status=status,
        path=path,
        line=lines.get("id"),
        body=query,
    )
    if DEPRECATED_NAME.search(title) or (status or "").lower() in DISABLED_STATUSES:
        rule.status, rule.enabled = "deprecated", False
    rule.severity = _severity(doc.get("severity"), issues, *at("severity"))
    rule.techniques = str_list(doc.get("relevantTechniques"), issues, *at("relevantTechniques"))
    written = str_list(doc.get("tactics"), issues, *at("tactics"))
    rule.tactics = _tactics(written, issues, *at("tactics"))
    connectors = _connectors(
        doc.get("requiredDataConnectors"), issues, *at("requiredDataConnectors")
    )
    rule.log_sources = _log_sources(connectors, query)
    _extras(rule, doc, connectors, issues, path, lines)
    return rule


def _query(value: Any, issues: list[Issue], path: str, line: int | None, fld: str) -> str | None:
    """The KQL exactly as written (the rule's body); None when the file has none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        issues.append(error(f"{fld} must be a string", path, line, fld))
        return None
    return value


def _severity(value: Any, issues: list[Issue], path: str, line: int | None, fld: str) -> str | None:
    text = opt_str(value, issues, path, line, fld)
    if text is None:
        return None
    if text.lower() in SEVERITIES:
        return text.lower()
    known = "Informational, Low, Medium, High"
    issues.append(warning(f"unknown severity {text!r} (known: {known})", path, line, fld))
    return None


def _tactics(
    written: list[str], issues: list[Issue], path: str, line: int | None, fld: str
) -> list[str]:
    """ATT&CK short names; an unknown name is kept as written (validation counts it among the
    release's unknown tactics) and named in a warning here."""
    out: list[str] = []
    for name in written:
        short = _short_name(name)
        if short is None:
            issues.append(warning(_unknown_tactic(name), path, line, fld))
            short = name
        if short not in out:
            out.append(short)
    return out


def _short_name(name: str) -> str | None:
    """`CommandAndControl` → `command-and-control`; None for what is not a tactic name at all,
    or for `PreAttack` (the retired PRE-ATT&CK matrix, no tactic of today's releases)."""
    if not TACTIC_NAME.fullmatch(name.strip()) or name.strip().lower() == "preattack":
        return None
    return "-".join(w.lower() for w in TACTIC_WORD.findall(name))


def _unknown_tactic(name: str) -> str:
    if name.strip().lower() == "preattack":
        return (
            "tactic 'PreAttack' is the retired PRE-ATT&CK matrix (now the reconnaissance and "
            "resource-development tactics, which one cannot tell apart here); kept as written"
        )
    return f"tactic {name!r} is not a tactic name in CamelCase; kept as written"


def _connectors(
    value: Any, issues: list[Issue], path: str, line: int | None, fld: str
) -> list[tuple[str, list[str]]]:
    """(connectorId, dataTypes) pairs; a malformed entry is an error naming its index."""
    if value is None:
        return []
    if not isinstance(value, list):
        issues.append(error(f"{fld} must be a list", path, line, fld))
        return []
    out: list[tuple[str, list[str]]] = []
    for i, entry in enumerate(value):
        where = f"{fld}[{i}]"
        if not isinstance(entry, dict):
            issues.append(error(f"{where} must be a mapping", path, line, where))
            continue
        cid = opt_str(entry.get("connectorId"), issues, path, line, f"{where}.connectorId")
        types = str_list(entry.get("dataTypes"), issues, path, line, f"{where}.dataTypes")
        if cid or types:
            out.append((cid or "", types))
    return out


def _log_sources(
    connectors: list[tuple[str, list[str]]], query: str | None
) -> list[dict[str, str]]:
    """One entry per (connector, data type), one per connector without data types, and one per
    SecurityEvent id the query selects (a precise link beside the table's coarse one)."""
    out: list[dict[str, str]] = []
    for cid, types in connectors:
        entries = [{"connector": cid, "data_type": t} for t in types] or [{"connector": cid}]
        out += [e for e in entries if e not in out]
    tables = {e.get("data_type", "").lower() for e in out}
    if query and EVENT_TABLE.lower() in tables:
        for eid in _event_ids(query):
            out.append({"data_type": EVENT_TABLE, "event_id": eid})
    return out


def _event_ids(query: str) -> list[str]:
    ids: list[str] = []
    for m in EVENT_ID.finditer(query):
        found = [m.group(1)] if m.group(1) else re.findall(r"\d{1,5}", m.group(2))
        ids += [i for i in found if i not in ids]
    return ids


def _extras(
    rule: ParsedRule,
    doc: dict[str, Any],
    connectors: list[tuple[str, list[str]]],
    issues: list[Issue],
    path: str,
    lines: dict[str, int],
) -> None:
    """What kbmap has no field for, kept in `extra` as JSON (nested blocks only when shallow)."""
    for key in TOP_EXTRAS:
        if doc.get(key) is not None:
            rule.extra[key] = plain(doc[key])
    if doc.get("status") is not None:
        rule.extra["sentinel_status"] = plain(doc["status"])
    if connectors:
        rule.extra["required_data_connectors"] = [
            {"connectorId": c, "dataTypes": t} for c, t in connectors
        ]
    solution = _solution(path)
    if solution:
        rule.extra["solution"] = solution
    entities = doc.get("entityMappings")
    if isinstance(entities, list):
        types = [e.get("entityType") for e in entities if isinstance(e, dict)]
        rule.extra["entity_types"] = [t for t in types if isinstance(t, str)]
    for key in NESTED_EXTRAS:
        value = doc.get(key)
        if value is None:
            continue
        if _depth(value) > MAX_EXTRA_DEPTH:
            message = f"{key} nests deeper than {MAX_EXTRA_DEPTH} levels; not kept"
            issues.append(warning(message, path, lines.get(key), key))
            continue
        rule.extra[key] = plain(value)


def _solution(path: str) -> str | None:
    parts = PurePosixPath(path).parts
    if "Solutions" in parts[:-1]:
        i = parts.index("Solutions")
        return parts[i + 1] if i + 2 < len(parts) else None
    return None


def _depth(value: Any) -> int:
    """Nesting depth of lists and mappings, without recursion (a hostile file nests 1000)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack += [(v, level + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, level + 1) for v in item]
    return deepest
