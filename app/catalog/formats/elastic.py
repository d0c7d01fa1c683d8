"""Elastic's detection rules: TOML files of github.com/elastic/detection-rules, `rules/**/*.toml`.

Each file holds `[metadata]` (maturity, dates, integration) and `[rule]` (rule_id, name, index,
tags, ...) with ATT&CK in `[[rule.threat]]` blocks: one tactic, its techniques, their
subtechniques. A technique listed with subtechniques is covered *through* them, so only the
subtechnique ids are kept; a technique without subtechniques is kept itself. Tactic ids go to
`tactics`, and the explicit (tactic, technique) pairs to `extra["attack_pairs"]`, so validation can
check each pair rather than the cross product.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any, ClassVar

from app.catalog.base import CatalogSource, ParsedCatalog, ParsedRule
from app.catalog.formats._common import (
    check_rule_count,
    decode,
    error,
    opt_str,
    plain,
    rel_dir,
    report_duplicates,
    stem,
    str_list,
    warning,
)
from app.catalog.telemetry import FormatTelemetry, Hit, Loader, LogSourceMap
from app.core.config import Limits
from app.core.errors import Issue
from app.core.limits import toml_too_deep

RULE_TABLE = re.compile(r"^[ \t]*\[rule\][ \t]*$", re.M)
THREAT_TABLE = re.compile(r"^[ \t]*\[\[rule\.threat\]\][ \t]*$", re.M)
SNIFF_RULE = re.compile(rb"^[ \t]*\[rule\][ \t]*\r?$", re.M)
SNIFF_ID = re.compile(rb"^[ \t]*rule_id[ \t]*=", re.M)
TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
FRAMEWORK = "MITRE ATT&CK"
EXTRA_RULE_KEYS = ("risk_score", "type", "language", "author", "license", "version")
EXTRA_META_KEYS = ("creation_date", "updated_date", "deprecation_date", "integration")
_INDEX_TAIL = "*-_. "


@dataclass(frozen=True)
class ElasticLogSources:
    """Elastic's part of the log-source tables (section `elastic`): `index` patterns, matched
    after lower-casing and dropping a trailing "*", "-", "_" or "." (the longest known prefix
    wins), and the "Data Source: ..." tag names (whole products: coarse)."""

    indexes: dict[str, Hit]  # normalised index pattern -> hit
    data_sources: dict[str, Hit]

    @classmethod
    def load(cls, ld: Loader, value: Any, t: LogSourceMap) -> ElasticLogSources:
        elastic = ld.mapping(value, "elastic", {"indexes", "data_sources"})
        indexes = ld.table(elastic.get("indexes"), "elastic.indexes", "elastic:").values()
        return cls(
            indexes={
                h.key.removeprefix("elastic:").lower().rstrip(_INDEX_TAIL): h for h in indexes
            },
            data_sources=ld.table(
                elastic.get("data_sources"), "elastic.data_sources", "elastic:", True
            ),
        )

    def hits(self, e: dict[str, str], raw: dict[str, str], t: LogSourceMap) -> list[Hit]:
        hits = []
        if "index" in e and (hit := self._index_hit(e["index"])):
            hits.append(hit)
        if "data_source" in e and (hit := self.data_sources.get(e["data_source"])):
            hits.append(hit)
        return hits

    def _index_hit(self, pattern: str) -> Hit | None:
        key = pattern.rstrip(_INDEX_TAIL)
        while key:
            if hit := self.indexes.get(key):
                return hit
            cut = max(key.rfind(c) for c in ".-_")
            key = key[:cut].rstrip(_INDEX_TAIL) if cut > 0 else ""
        return None


class ElasticImporter:
    """A folder or .tar.gz of detection-rules TOML files, or one such file."""

    format_id: ClassVar[str] = "elastic"
    title: ClassVar[str] = "Elastic detection-rules (TOML)"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.toml",)
    telemetry: ClassVar[FormatTelemetry] = FormatTelemetry(
        frozenset({"index", "data_source"}), ElasticLogSources.load, section="elastic"
    )

    def sniff(self, source: CatalogSource) -> bool:
        """A .toml file holding a `[rule]` table with a `rule_id` (the first 50 in a tree)."""
        tomls = [d for p, d in source.files() if p.lower().endswith(".toml")]
        if not source.is_tree:
            return len(tomls) == 1 and _is_rule(source.head(65536))
        return any(_is_rule(d) for d in tomls[:50])

    def parse(self, source: CatalogSource, limits: Limits) -> ParsedCatalog:
        """Every .toml file with a `[rule]` table is one rule; other TOML files are not rules."""
        issues: list[Issue] = []
        cat = ParsedCatalog(
            format_id=self.format_id,
            rules=[],
            issues=issues,
            vendor="Elastic",
            product="Elastic Security",
        )
        for path, data in source.files():
            if not path.lower().endswith(".toml"):
                continue
            cat.files_read += 1
            rule = _parse_file(path, data, issues, limits)
            if rule is not None:
                cat.rules.append(rule)
                check_rule_count(len(cat.rules), limits, source.name)
        if not cat.files_read:
            issues.append(error("no .toml files found", source.name))
        report_duplicates(cat.rules, issues)
        return cat


def _is_rule(data: bytes) -> bool:
    return bool(SNIFF_RULE.search(data)) and bool(SNIFF_ID.search(data))


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _parse_file(path: str, data: bytes, issues: list[Issue], limits: Limits) -> ParsedRule | None:
    text = decode(data, path, issues)
    if text is None:
        return None
    deep = toml_too_deep(text, limits.max_toml_depth)
    if deep is not None:
        issues.append(error(f"TOML nests deeper than {limits.max_toml_depth} levels", path, deep))
        return None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = TOML_POSITION.search(message)
        line = int(m.group(1)) if m else None
        issues.append(error(f"invalid TOML: {TOML_POSITION.sub('', message)}", path, line))
        return None
    table = doc.get("rule")
    if table is None:
        if "metadata" in doc:  # shaped like a rule file, so say why it yields no rule
            issues.append(warning("no [rule] table: the file is not read as a rule", path))
        return None
    header = RULE_TABLE.search(text)
    line = _line_at(text, header.start()) if header else None
    if not isinstance(table, dict):
        issues.append(error("rule must be a table", path, line, "rule"))
        return None
    meta = doc.get("metadata", {})
    if not isinstance(meta, dict):
        issues.append(error("metadata must be a table", path, None, "metadata"))
        meta = {}
    rule_id = opt_str(table.get("rule_id"), issues, path, line, "rule.rule_id")
    if rule_id is None:
        if "rule_id" not in table or not str(table["rule_id"]).strip():
            issues.append(error("missing required field rule_id", path, line, "rule.rule_id"))
        return None
    return _build(rule_id, table, meta, text, path, line, issues)


def _build(
    rule_id: str,
    table: dict[str, Any],
    meta: dict[str, Any],
    text: str,
    path: str,
    line: int | None,
    issues: list[Issue],
) -> ParsedRule:
    title = opt_str(table.get("name"), issues, path, line, "rule.name")
    if title is None:
        issues.append(error("missing required field name", path, line, "rule.name"))
    maturity = opt_str(meta.get("maturity"), issues, path, None, "metadata.maturity")
    tags = str_list(table.get("tags"), issues, path, line, "rule.tags")
    rule = ParsedRule(
        rule_id=rule_id,
        name=stem(path),
        title=title or "",
        description=opt_str(table.get("description"), issues, path, line, "rule.description") or "",
        package=rel_dir(path),
        severity=opt_str(table.get("severity"), issues, path, line, "rule.severity"),
        status=maturity,
        enabled=maturity != "deprecated",
        references=str_list(table.get("references"), issues, path, line, "rule.references"),
        path=path,
        line=line,
        raw_tags=tags,
    )
    query = table.get("query")  # its language stays in extra["language"]
    rule.body = query if isinstance(query, str) else None
    indexes = str_list(table.get("index"), issues, path, line, "rule.index")
    rule.log_sources = [{"index": i} for i in indexes]
    rule.log_sources += [{"data_source": v} for v in _tag_values(tags, "Data Source")]
    rule.platforms = [v.lower() for v in _tag_values(tags, "OS")]
    threat_lines = [_line_at(text, m.start()) for m in THREAT_TABLE.finditer(text)]
    techniques, tactics, pairs = _threat(table.get("threat"), threat_lines, path, line, issues)
    rule.techniques, rule.tactics = techniques, tactics
    if pairs:
        rule.extra["attack_pairs"] = pairs
    for key in EXTRA_RULE_KEYS:
        if key in table:
            rule.extra[key] = plain(table[key])
    for key in EXTRA_META_KEYS:
        if key in meta:
            rule.extra[key] = plain(meta[key])
    return rule


def _tag_values(tags: list[str], prefix: str) -> list[str]:
    """Values of Elastic's `Prefix: value` tags, e.g. `OS: Windows` → `Windows`."""
    out: list[str] = []
    for tag in tags:
        key, sep, value = tag.partition(":")
        if sep and key.strip() == prefix and value.strip() and value.strip() not in out:
            out.append(value.strip())
    return out


def _threat(
    value: Any, lines: list[int], path: str, rule_line: int | None, issues: list[Issue]
) -> tuple[list[str], list[str], list[list[str]]]:
    """Techniques, tactics and explicit [tactic, technique] pairs from `[[rule.threat]]`."""
    techniques: list[str] = []
    tactics: list[str] = []
    pairs: list[list[str]] = []
    if value is None:
        return techniques, tactics, pairs
    if not isinstance(value, list):
        issues.append(error("threat must be an array of tables", path, rule_line, "rule.threat"))
        return techniques, tactics, pairs
    for i, block in enumerate(value):
        line, fld = (lines[i] if i < len(lines) else rule_line), f"rule.threat[{i}]"
        if not isinstance(block, dict):
            issues.append(error("a threat entry must be a table", path, line, fld))
            continue
        if block.get("framework") != FRAMEWORK:
            message = f"framework {block.get('framework')!r} is not {FRAMEWORK}; block not read"
            issues.append(warning(message, path, line, f"{fld}.framework"))
            continue
        tactic = _id(block.get("tactic"), path, line, f"{fld}.tactic", issues)
        if tactic and tactic not in tactics:
            tactics.append(tactic)
        entries = block.get("technique") or []
        if not isinstance(entries, list):
            issues.append(
                error("technique must be an array of tables", path, line, f"{fld}.technique")
            )
            continue
        for j, entry in enumerate(entries):
            for technique in _covered(entry, path, line, f"{fld}.technique[{j}]", issues):
                if technique not in techniques:
                    techniques.append(technique)
                if tactic and [tactic, technique] not in pairs:
                    pairs.append([tactic, technique])
    return techniques, tactics, pairs


def _covered(entry: Any, path: str, line: int | None, fld: str, issues: list[Issue]) -> list[str]:
    """A technique's subtechnique ids if it lists any, else its own id."""
    technique = _id(entry, path, line, fld, issues)
    subs = entry.get("subtechnique") if isinstance(entry, dict) else None
    if subs is None:
        return [technique] if technique else []
    if not isinstance(subs, list):
        issues.append(
            error("subtechnique must be an array of tables", path, line, f"{fld}.subtechnique")
        )
        return [technique] if technique else []
    ids = [_id(s, path, line, f"{fld}.subtechnique[{k}]", issues) for k, s in enumerate(subs)]
    found = [i for i in ids if i]
    return found or ([technique] if technique else [])


def _id(value: Any, path: str, line: int | None, fld: str, issues: list[Issue]) -> str | None:
    """The `id` of a tactic, technique or subtechnique table; its absence is an error."""
    if not isinstance(value, dict):
        issues.append(error("must be a table with an id", path, line, fld))
        return None
    ident = value.get("id")
    if not isinstance(ident, str) or not ident.strip():
        issues.append(error("missing required field id", path, line, f"{fld}.id"))
        return None
    return ident.strip()
