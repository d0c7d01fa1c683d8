"""Splunk's detections: YAML files of github.com/splunk/security_content, `detections/**/*.yml`.

A detection names its ATT&CK techniques in `tags.mitre_attack_id` and its telemetry in
`data_source`; it states no tactics and no platforms, so none are invented. Splunk has no severity
field either: severity comes from the highest `rba.risk_objects[].score` (older files:
`tags.risk_score`) in bands of 20 (≤20 informational, ≤40 low, ≤60 medium, ≤80 high, above that
critical), else from the detection type (TTP and Correlation high, Anomaly medium, Hunting low).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar

from app.catalog.base import CatalogSource, ParsedCatalog, ParsedRule
from app.catalog.formats._common import (
    check_rule_count,
    decode,
    error,
    is_xp_tree,
    looks_like_sigma,
    opt_str,
    plain,
    rel_dir,
    report_duplicates,
    stem,
    str_list,
    top_key_lines,
    warning,
)
from app.catalog.telemetry import FormatTelemetry, Hit, Loader, LogSourceMap
from app.core.bounded_yaml import load_yaml_documents
from app.core.config import Limits
from app.core.errors import InvalidInput, Issue

YAML_SUFFIXES = (".yml", ".yaml")
SNIFF_SEARCH = re.compile(rb"^search[ \t]*:", re.M)
SNIFF_TAGS = re.compile(rb"^tags[ \t]*:", re.M)
SNIFF_ATTACK = re.compile(rb"^[ \t]+mitre_attack_id[ \t]*:", re.M)
ATTACK_KEY = re.compile(r"^[ \t]+mitre_attack_id[ \t]*:", re.M)
TYPE_SEVERITY = {"ttp": "high", "correlation": "high", "anomaly": "medium", "hunting": "low"}
BANDS = ((20, "informational"), (40, "low"), (60, "medium"), (80, "high"))
TAG_EXTRAS = ("analytic_story", "asset_type", "security_domain", "product", "cve")
TOP_EXTRAS = ("type", "version", "date", "author")


@dataclass(frozen=True)
class SplunkLogSources:
    """Splunk's part of the log-source tables (section `splunk`): a `data_source` name is
    "<prefix> <event id>" (a channel's event), an exact name, or "<known source> <anything>"."""

    event_prefixes: dict[str, str]  # "sysmon eventid" -> channel id
    data_sources: dict[str, Hit]
    name_prefixes: dict[str, str]  # "aws cloudtrail" -> key of data_sources

    @classmethod
    def load(cls, ld: Loader, value: Any, t: LogSourceMap) -> SplunkLogSources:
        splunk = ld.mapping(value, "splunk", {"event_prefixes", "data_sources", "name_prefixes"})
        data_sources = ld.table(splunk.get("data_sources"), "splunk.data_sources", "splunk:")
        prefixes = ld.mapping(splunk.get("event_prefixes"), "splunk.event_prefixes")
        names = ld.mapping(splunk.get("name_prefixes"), "splunk.name_prefixes")
        if bad := [v for v in prefixes.values() if v not in t.channels]:
            raise ld.fail("splunk.event_prefixes", f"unknown channels {bad}")
        if bad := [v for v in names.values() if str(v).lower() not in data_sources]:
            raise ld.fail("splunk.name_prefixes", f"unknown data sources {bad}")
        return cls(
            event_prefixes={k.lower(): v for k, v in prefixes.items()},
            data_sources=data_sources,
            name_prefixes={k.lower(): str(v).lower() for k, v in names.items()},
        )

    def hits(self, e: dict[str, str], raw: dict[str, str], t: LogSourceMap) -> list[Hit]:
        hit = self._hit(e["data_source"], raw["data_source"], t)
        return [hit] if hit else []

    def _hit(self, text: str, original: str, t: LogSourceMap) -> Hit | None:
        head, _, tail = text.rpartition(" ")
        if (cid := self.event_prefixes.get(head)) and (hit := t.events.get((cid, tail))):
            return Hit(f"splunk:{original}", hit.components, hit.analytics, hit.coarse)
        if hit := self.data_sources.get(text):
            return hit
        words = text.split(" ")
        for n in range(len(words) - 1, 0, -1):
            if (name := self.name_prefixes.get(" ".join(words[:n]))) is not None:
                return Hit(f"splunk:{original}", self.data_sources[name].components, coarse=True)
        return None


class SplunkImporter:
    """A security_content tree (or any folder of its detection YAML files), or one detection."""

    format_id: ClassVar[str] = "splunk"
    title: ClassVar[str] = "Splunk security_content detections (YAML)"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.yml", "*.yaml")
    telemetry: ClassVar[FormatTelemetry] = FormatTelemetry(
        frozenset({"data_source"}), SplunkLogSources.load, section="splunk"
    )

    def sniff(self, source: CatalogSource) -> bool:
        """A YAML file with top-level `search:` and `tags:` holding `mitre_attack_id`, not Sigma."""
        if not source.is_tree:
            files = source.files()
            single = len(files) == 1 and files[0][0].lower().endswith(YAML_SUFFIXES)
            return single and _is_detection(source.head(65536))
        if is_xp_tree(p for p, _ in source.files()):
            return False
        return any(_is_detection(data) for _, data in _rule_files(source)[:50])

    def parse(self, source: CatalogSource, limits: Limits) -> ParsedCatalog:
        """One rule per detection file; given a `detections/` folder, other files are not read."""
        issues: list[Issue] = []
        cat = ParsedCatalog(
            format_id=self.format_id,
            rules=[],
            issues=issues,
            vendor="Splunk",
            product="Splunk Enterprise Security",
        )
        files = _rule_files(source)
        in_detections = any(_under_detections(p) for p, _ in files)
        for path, data in files:
            cat.files_read += 1
            rule = _parse_file(
                path, data, limits, issues, known=in_detections or not source.is_tree
            )
            if rule is not None:
                cat.rules.append(rule)
                check_rule_count(len(cat.rules), limits, source.name)
        if not files:
            issues.append(error("no .yml detection files found", source.name))
        report_duplicates(cat.rules, issues)
        return cat


def _under_detections(path: str) -> bool:
    return "detections" in PurePosixPath(path).parts[:-1]


def _rule_files(source: CatalogSource) -> list[tuple[str, bytes]]:
    """YAML files; in a tree with a `detections/` folder only those (stories, macros are not)."""
    ymls = [(p, d) for p, d in source.files() if p.lower().endswith(YAML_SUFFIXES)]
    detections = [(p, d) for p, d in ymls if _under_detections(p)]
    return detections or ymls


def _is_detection(data: bytes) -> bool:
    return (
        bool(SNIFF_SEARCH.search(data))
        and bool(SNIFF_TAGS.search(data))
        and bool(SNIFF_ATTACK.search(data))
        and not looks_like_sigma(data)
    )


def _parse_file(
    path: str, data: bytes, limits: Limits, issues: list[Issue], *, known: bool
) -> ParsedRule | None:
    """One detection; `known` says the file was given as a detection, so gaps are errors."""
    text = decode(data, path, issues)
    if text is None:
        return None
    try:
        docs = [
            d for d in load_yaml_documents(text, name=path, max_aliases=limits.max_yaml_aliases)
        ]
    except InvalidInput as exc:
        issues.append(Issue(exc.message, exc.location, severity="error"))
        return None
    docs = [d for d in docs if d is not None]
    if not docs:
        issues.append(warning("empty YAML file: no detection read", path))
        return None
    if len(docs) > 1:
        issues.append(warning(f"{len(docs)} YAML documents; only the first is read", path))
    doc = docs[0]
    if not isinstance(doc, dict):
        issues.append(error("a detection is a mapping of fields", path, 1))
        return None
    if not known and "search" not in doc:
        issues.append(warning("no search: not a Splunk detection, not read", path))
        return None
    lines = top_key_lines(text)
    line = lines.get("id")
    rule_id = opt_str(doc.get("id"), issues, path, line, "id")
    title = opt_str(doc.get("name"), issues, path, lines.get("name"), "name")
    if title is None and "name" not in doc:
        issues.append(error("missing required field name", path, None, "name"))
    if rule_id is None:
        if "id" not in doc or doc["id"] is None:
            issues.append(error("missing required field id", path, None, "id"))
        return None
    return _build(rule_id, title or "", doc, text, lines, path, issues)


def _build(
    rule_id: str,
    title: str,
    doc: dict[str, Any],
    text: str,
    lines: dict[str, int],
    path: str,
    issues: list[Issue],
) -> ParsedRule:
    def at(key: str) -> tuple[str, int | None, str]:
        return path, lines.get(key), key

    status = opt_str(doc.get("status"), issues, *at("status"))
    rule = ParsedRule(
        rule_id=rule_id,
        name=stem(path),
        title=title,
        description=opt_str(doc.get("description"), issues, *at("description")) or "",
        package=rel_dir(path),
        status=status,
        enabled=status != "deprecated",
        references=str_list(doc.get("references"), issues, *at("references")),
        path=path,
        line=lines.get("id"),
    )
    search = doc.get("search")
    rule.body = search if isinstance(search, str) else None
    sources = str_list(doc.get("data_source"), issues, *at("data_source"))
    rule.log_sources = [{"data_source": s} for s in sources]
    tags = doc.get("tags") or {}
    if not isinstance(tags, dict):
        issues.append(error("tags must be a mapping", *at("tags")))
        tags = {}
    attack = ATTACK_KEY.search(text)
    attack_line = text.count("\n", 0, attack.start()) + 1 if attack else lines.get("tags")
    rule.techniques = str_list(
        tags.get("mitre_attack_id"), issues, path, attack_line, "tags.mitre_attack_id"
    )
    rule_type = opt_str(doc.get("type"), issues, *at("type"))
    score = _risk_score(doc, tags)
    rule.severity = (
        _band(score) if score is not None else TYPE_SEVERITY.get((rule_type or "").lower())
    )
    if score is not None:
        rule.extra["risk_score"] = score
    for key in TOP_EXTRAS:
        if doc.get(key) is not None:
            rule.extra[key] = plain(doc[key])
    for key in TAG_EXTRAS:
        if tags.get(key) is not None:
            rule.extra[key] = plain(tags[key])
    return rule


def _risk_score(doc: dict[str, Any], tags: dict[str, Any]) -> int | None:
    """Highest RBA risk-object score, else the older `tags.risk_score`, else None."""
    rba = doc.get("rba")
    objects = rba.get("risk_objects") if isinstance(rba, dict) else None
    scores = [
        o["score"]
        for o in (objects if isinstance(objects, list) else [])
        if isinstance(o, dict) and isinstance(o.get("score"), int | float)
    ]
    if scores:
        return int(max(scores))
    legacy = tags.get("risk_score")
    return int(legacy) if isinstance(legacy, int | float) and not isinstance(legacy, bool) else None


def _band(score: int) -> str:
    return next((name for top, name in BANDS if score <= top), "critical")
