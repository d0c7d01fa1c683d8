"""DeTT&CT technique administration files (`file_type: technique-administration`) as a catalog.

A team moving from DeTT&CT keeps its hand-kept detection scores: one rule per (technique,
detection entry), id `<technique_id>:<applicable_to joined by +>`, scored by the newest entry of
its `score_logbook` (an entry without a date counts as the oldest; among equal dates the first
written wins, as DeTT&CT's `get_latest_score_obj` does). DeTT&CT's −1…5 map onto kbmap's weights:

| DeTT&CT score | meaning | kbmap rule |
|---|---|---|
| −1 | none | enabled: false (weight 0: kept and listed, not counted) |
| 0 | forensics / context only | enabled: false |
| 1 | poor | severity informational |
| 2 | fair | severity low |
| 3 | good | severity medium |
| 4 | very good | severity high |
| 5 | excellent | severity critical |

Every rule's status is "stable". Version 1.2 is read as DeTT&CT writes it; 1.0 and 1.1 (a `score`
and `date_implemented` on the entry, no `applicable_to`) are read as DeTT&CT's upgrade turns them
into 1.2, in memory. The whole detection logbook (and the visibility logbook of the entries that
apply to the same systems) is kept in `extra`, dates as YYYY-MM-DD, oldest first.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml

from app.catalog.base import CatalogSource, ParsedCatalog, ParsedRule
from app.catalog.formats._common import check_rule_count, error, report_duplicates, warning
from app.catalog.telemetry import FormatTelemetry
from app.core.bounded_yaml import load_yaml_documents, utf8_head, yaml_text
from app.core.config import Limits
from app.core.errors import InvalidInput, Issue

FILE_TYPE = "technique-administration"
SNIFF = re.compile(
    rb"^file_type[ \t]*:[ \t]*['\"]?technique-administration['\"]?[ \t]*(#.*)?$", re.M
)
YAML_SUFFIXES = (".yaml", ".yml")
DOMAINS = {"enterprise-attack": "enterprise", "ics-attack": "ics", "mobile-attack": "mobile"}
SEVERITY = {1: "informational", 2: "low", 3: "medium", 4: "high", 5: "critical"}
VERSIONS = (1.0, 1.1, 1.2)
TOP_KEYS = ("version", "file_type", "name", "domain", "platform", "techniques", "notes")
TECHNIQUE_KEYS = ("technique_id", "technique_name", "detection", "visibility")
ENTRY_KEYS = ("applicable_to", "location", "comment", "score_logbook")
LEGACY_KEYS = ("score", "date_implemented", "date_registered", "date")  # 1.0 / 1.1 entries
LOG_KEYS = ("date", "score", "comment", "auto_generated")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class DettectTechniquesImporter:
    """One DeTT&CT technique administration YAML file."""

    format_id: ClassVar[str] = "dettect-techniques"
    title: ClassVar[str] = "DeTT&CT technique administration (YAML)"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.yaml", "*.yml")
    telemetry: ClassVar[FormatTelemetry | None] = None  # scores by hand, no log sources

    def sniff(self, source: CatalogSource) -> bool:
        """One YAML file whose top level says `file_type: technique-administration` (DeTT&CT's
        data-source and group files say otherwise; no other format writes `file_type`)."""
        if source.is_tree:
            return False
        files = source.files()
        if len(files) != 1 or not files[0][0].lower().endswith(YAML_SUFFIXES):
            return False
        return bool(SNIFF.search(utf8_head(source.head(65536))))

    def parse(self, source: CatalogSource, limits: Limits) -> ParsedCatalog:
        cat = ParsedCatalog(format_id=self.format_id, rules=[], vendor="DeTT&CT")
        files = source.files()
        if len(files) != 1:
            cat.issues.append(error(f"a DeTT&CT file is one file, found {len(files)}", source.name))
            return cat
        path, data = files[0]
        cat.files_read = 1
        doc, lines = _load(path, data, limits, cat.issues)
        if doc is not None:
            _Reader(path, lines, cat).document(doc)
            check_rule_count(len(cat.rules), limits, source.name)
            report_duplicates(cat.rules, cat.issues)
        return cat


def _load(
    path: str, data: bytes, limits: Limits, issues: list[Issue]
) -> tuple[dict[str, Any] | None, _Lines]:
    """The one document through the bounded loader (UTF-16, alias bombs), and its lines."""
    try:
        text = yaml_text(data, name=path)
        docs = [
            d for d in load_yaml_documents(text, name=path, max_aliases=limits.max_yaml_aliases)
        ]
    except InvalidInput as exc:
        issues.append(Issue(exc.message, exc.location, severity="error"))
        return None, _Lines()
    docs = [d for d in docs if d is not None]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        found = (
            "empty" if not docs else f"{len(docs)} documents" if len(docs) > 1 else "not a mapping"
        )
        issues.append(error(f"a technique administration file is one mapping ({found})", path, 1))
        return None, _Lines()
    return docs[0], _Lines.of(text)


@dataclass
class _Lines:
    """Where things sit: top-level keys, each technique, each detection entry (best effort)."""

    top: dict[str, int] | None = None
    techniques: dict[int, int] | None = None
    entries: dict[tuple[int, int], int] | None = None

    @classmethod
    def of(cls, text: str) -> _Lines:
        """Composing expands no alias: called after the bounded loader accepted the text."""
        try:
            node = yaml.compose(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            return cls()
        found = cls({}, {}, {})
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                found.top_line(key, value)
        return found

    def top_line(self, key: yaml.Node, value: yaml.Node) -> None:
        assert self.top is not None and self.techniques is not None and self.entries is not None
        self.top.setdefault(str(key.value), key.start_mark.line + 1)
        if key.value != "techniques" or not isinstance(value, yaml.SequenceNode):
            return
        for i, item in enumerate(value.value):
            self.techniques[i] = item.start_mark.line + 1
            for k, v in item.value if isinstance(item, yaml.MappingNode) else ():
                if k.value == "detection" and isinstance(v, yaml.SequenceNode):
                    for j, entry in enumerate(v.value):
                        self.entries[(i, j)] = entry.start_mark.line + 1

    def at_top(self, key: str) -> int | None:
        return (self.top or {}).get(key)

    def at(self, technique: int, entry: int | None = None) -> int | None:
        if entry is not None and (line := (self.entries or {}).get((technique, entry))):
            return line
        return (self.techniques or {}).get(technique)


class _Reader:
    """Reads one document into `cat`, every problem an Issue with line and field."""

    def __init__(self, path: str, lines: _Lines, cat: ParsedCatalog) -> None:
        self.path, self.lines, self.cat = path, lines, cat
        self.platforms: list[str] = []

    def err(self, message: str, line: int | None, fld: str) -> None:
        self.cat.issues.append(error(message, self.path, line, fld))

    def warn(self, message: str, line: int | None, fld: str) -> None:
        self.cat.issues.append(warning(message, self.path, line, fld))

    def document(self, doc: dict[str, Any]) -> None:
        top = self.lines.at_top
        if doc.get("file_type") != FILE_TYPE:
            found = doc.get("file_type")
            self.err(
                f"file_type must be {FILE_TYPE!r}, not {found!r}", top("file_type"), "file_type"
            )
            return
        for key in doc:
            if key not in TOP_KEYS:
                self.warn(f"unknown key {key!r} ignored", top(str(key)), str(key))
        legacy = self.version(doc.get("version"))
        self.header(doc)
        techniques = doc.get("techniques")
        if not isinstance(techniques, list):
            problem = "missing" if techniques is None else "must be a list of techniques"
            self.err(f"techniques {problem}", top("techniques"), "techniques")
            return
        for i, item in enumerate(techniques):
            self.technique(i, item, legacy)

    def version(self, value: Any) -> bool:
        """True for a 1.0 / 1.1 file (scores on the entry, read as DeTT&CT's upgrade does)."""
        line = self.lines.at_top("version")
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.err(
                f"version must be a number (one of {VERSIONS}), not {value!r}", line, "version"
            )
            return False
        if value > VERSIONS[-1]:
            self.warn(f"version {value} is newer than {VERSIONS[-1]}; read as 1.2", line, "version")
        elif value not in VERSIONS:
            self.err(
                f"version {value} is unknown; known: {', '.join(map(str, VERSIONS))}",
                line,
                "version",
            )
        return value < 1.2

    def header(self, doc: dict[str, Any]) -> None:
        top = self.lines.at_top
        name = doc.get("name")
        if name is not None and not isinstance(name, str):
            self.err("name must be a string", top("name"), "name")
        elif name:  # the catalog name: kbmap's letters only ("example techniques ICS" → dashes)
            self.cat.name = NAME_CHARS.sub("-", name).strip("-.")[:80] or None
        domain = doc.get("domain")
        if domain not in DOMAINS:
            known = ", ".join(DOMAINS)
            self.err(f"domain must be one of {known}, not {domain!r}", top("domain"), "domain")
        else:
            self.cat.attack_domain = DOMAINS[domain]
        self.platforms = self.texts(doc.get("platform"), top("platform"), "platform")

    def texts(self, value: Any, line: int | None, fld: str) -> list[str]:
        """A string or a list of strings (DeTT&CT writes both); anything else is an error."""
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            self.err(f"{fld} must be a string or a list of strings", line, fld)
            return []
        return [v.strip() for v in items if v.strip()]

    def text(self, value: Any, line: int | None, fld: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.err(f"{fld} must be a string", line, fld)
            return ""
        return value.strip()

    def technique(self, i: int, item: Any, legacy: bool) -> None:
        line, fld = self.lines.at(i), f"techniques[{i}]"
        if not isinstance(item, dict):
            self.err("a technique is a mapping (technique_id, detection, ...)", line, fld)
            return
        for key in item:
            if key not in TECHNIQUE_KEYS:
                self.warn(f"unknown key {key!r} ignored", line, f"{fld}.{key}")
        tid = item.get("technique_id")
        if not isinstance(tid, str) or not tid.strip():
            self.err("technique_id must be a non-empty string", line, f"{fld}.technique_id")
            return
        tech = _Technique(
            tid.strip(), self.text(item.get("technique_name"), line, f"{fld}.technique_name")
        )
        visibility = self.entries(item.get("visibility"), line, f"{fld}.visibility")
        tech.visibility = [
            self.entry(v, line, f"{fld}.visibility[{j}]", legacy) for j, v in enumerate(visibility)
        ]
        detection = self.entries(item.get("detection"), line, f"{fld}.detection")
        if not detection:
            self.warn(
                f"technique {tech.tid} has no detection entry: no rule", line, f"{fld}.detection"
            )
        for j, raw in enumerate(detection):
            entry = self.entry(raw, self.lines.at(i, j), f"{fld}.detection[{j}]", legacy)
            if entry is not None:
                self.cat.rules.append(self.rule(tech, entry, self.lines.at(i, j)))

    def entries(self, value: Any, line: int | None, fld: str) -> list[Any]:
        """Detection or visibility: a list of entries, or one entry (DeTT&CT reads both)."""
        if value is None:
            return []
        if isinstance(value, dict):
            return [value]
        if not isinstance(value, list):
            self.err(f"{fld} must be a list of entries", line, fld)
            return []
        return value

    def entry(self, raw: Any, line: int | None, fld: str, legacy: bool) -> _Entry | None:
        if not isinstance(raw, dict):
            self.err("an entry is a mapping (applicable_to, score_logbook, ...)", line, fld)
            return None
        known = ENTRY_KEYS + (LEGACY_KEYS if legacy else ())
        for key in raw:
            if key not in known:
                self.warn(f"unknown key {key!r} ignored", line, f"{fld}.{key}")
        applies = self.texts(raw.get("applicable_to", ["all"]), line, f"{fld}.applicable_to")
        entry = _Entry(
            applies or ["all"],
            self.texts(raw.get("location"), line, f"{fld}.location"),
            self.text(raw.get("comment"), line, f"{fld}.comment"),
        )
        if legacy and "score_logbook" not in raw:  # DeTT&CT's 1.1 → 1.2 upgrade, in memory
            date = raw.get("date_implemented", raw.get("date"))
            raw = {"score_logbook": [{"date": date, "score": raw.get("score"), "comment": ""}]}
        written = raw.get("score_logbook")
        entry.written = len(written) if isinstance(written, list) else int(written is not None)
        entry.logbook = self.logbook(written, line, f"{fld}.score_logbook")
        return entry

    def logbook(self, value: Any, line: int | None, fld: str) -> list[dict[str, Any]]:
        """The score entries, oldest first (no date first); each checked."""
        if value is None:  # no logbook: read as -1, with a warning (`rule`)
            return []
        items = [value] if isinstance(value, dict) else value
        if not isinstance(items, list):
            self.err(f"{fld} must be a list of score entries", line, fld)
            return []
        out = [
            s for k, raw in enumerate(items) if (s := self.score_entry(raw, line, f"{fld}[{k}]"))
        ]
        return sorted(out, key=lambda s: (s["date"] is not None, s["date"] or ""))

    def score_entry(self, raw: Any, line: int | None, fld: str) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.err("a score entry is a mapping (date, score, comment)", line, fld)
            return None
        for key in raw:
            if key not in LOG_KEYS:
                self.warn(f"unknown key {key!r} ignored", line, f"{fld}.{key}")
        score = raw.get("score")
        if isinstance(score, bool) or not isinstance(score, int) or not -1 <= score <= 5:
            self.err(
                f"score must be a whole number from -1 to 5, not {score!r}", line, f"{fld}.score"
            )
            return None
        entry = {
            "date": self.date(raw.get("date"), line, f"{fld}.date"),
            "score": score,
            "comment": self.text(raw.get("comment"), line, f"{fld}.comment"),
        }
        if "auto_generated" in raw:
            entry["auto_generated"] = raw["auto_generated"] is True
        return entry

    def date(self, value: Any, line: int | None, fld: str) -> str | None:
        """YYYY-MM-DD from a YAML date, a timestamp or a date-like string; empty is None."""
        if value is None or value == "":
            return None
        if isinstance(value, dt.datetime):
            return value.date().isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, str) and DATE.match(value.strip()):
            try:
                return dt.date.fromisoformat(value.strip()[:10]).isoformat()
            except ValueError:
                pass
        self.err(f"date must be a date (YYYY-MM-DD), not {value!r}", line, fld)
        return None

    def rule(self, tech: _Technique, entry: _Entry, line: int | None) -> ParsedRule:
        newest = _newest(entry.logbook)
        score = newest["score"] if newest else -1
        systems = ", ".join(entry.applies)
        rule = ParsedRule(
            rule_id=f"{tech.tid}:{'+'.join(entry.applies)}",
            name=tech.tid,
            title=f"{tech.name or tech.tid} ({systems})",
            description=entry.comment,
            techniques=[tech.tid],
            platforms=list(self.platforms),
            severity=SEVERITY.get(score),
            status="stable",
            enabled=score >= 1,
            path=self.path,
            line=line,
        )
        rule.extra = {
            "detection_score": score,
            "applicable_to": entry.applies,
            "location": entry.location,
            "score_logbook": entry.logbook,
            "visibility_logbook": _visibility(tech.visibility, entry.applies),
        }
        if not entry.written:  # a written entry that failed is an error already
            self.warn(
                f"{rule.rule_id}: empty score_logbook, read as -1 (none)", line, "score_logbook"
            )
        return rule


@dataclass
class _Entry:
    applies: list[str]
    location: list[str]
    comment: str
    logbook: list[dict[str, Any]] | None = None
    written: int = 0  # score entries as written, before checking

    def __post_init__(self) -> None:
        self.logbook = self.logbook or []


@dataclass
class _Technique:
    tid: str
    name: str
    visibility: list[_Entry | None] | None = None


def _newest(logbook: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """DeTT&CT's newest score: a later date wins, no date is oldest, ties keep the first."""
    newest: dict[str, Any] | None = None
    for entry in logbook or ():
        if newest is None or (entry["date"] and (newest["date"] or "") < entry["date"]):
            newest = entry
    return newest


def _visibility(entries: list[_Entry | None] | None, applies: list[str]) -> list[dict[str, Any]]:
    """The visibility scores of the entries that apply where this detection does (same systems,
    or `all` on either side), oldest first, each naming its entry's `applicable_to`."""
    mine = set(applies)
    found: list[dict[str, Any]] = []
    for v in entries or ():
        if v is None:
            continue
        if mine & set(v.applies) or "all" in mine or "all" in v.applies:
            found += [{**s, "applicable_to": v.applies} for s in v.logbook or ()]
    return sorted(found, key=lambda s: (s["date"] is not None, s["date"] or ""))
