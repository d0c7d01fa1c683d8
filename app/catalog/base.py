"""What every catalog importer takes and returns: a CatalogSource in, a ParsedCatalog out.

Importers are pure (no database, no network): they read the source through bounded readers,
collect every problem as an Issue with file and line, and never drop a rule silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from app.core.config import Limits
from app.core.errors import InvalidInput, Issue, Location

if TYPE_CHECKING:
    from app.catalog.telemetry import FormatTelemetry

# C0 and C1 controls, DEL and the Unicode line separators: never part of an id or a title, and
# each breaks some reader (openpyxl refuses them, terminals obey escapes, Navigator files).
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_LINE_BREAKS = re.compile(r"[\t\n\r\u2028\u2029]+")


@dataclass
class ParsedRule:
    """One detection rule as its catalog states it (mappings not yet checked against ATT&CK)."""

    rule_id: str
    name: str = ""
    title: str = ""
    description: str = ""
    package: str | None = None
    # technique references exactly as written ('attack.t1059.001', 'T1550.001@lateral-movement',
    # a technique URL, ...); validation folds them later
    techniques: list[str] = field(default_factory=list)
    tactics: list[str] = field(default_factory=list)
    # structured log-source descriptors, format-specific keys, e.g.
    # {"product": "windows", "category": "process_creation"} (Sigma),
    # {"provider": "Microsoft-Windows-Security-Auditing", "event_id": "4624"} (XP),
    # {"index": "logs-endpoint.events.*"} (Elastic), {"data_source": "Sysmon EventID 1"} (Splunk),
    # {"text": "Microsoft-Windows-Security-Auditing:4624"} (canonical free text)
    log_sources: list[dict[str, str]] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    severity: str | None = None
    status: str | None = None
    enabled: bool = True
    references: list[str] = field(default_factory=list)
    path: str | None = None  # provenance: file inside the source
    line: int | None = None
    raw_tags: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # the rule itself in its own language (Sigma YAML, SPL, KQL, EQL, ...), where the format
    # carries one: a STIX export writes it as the indicator's `pattern`
    body: str | None = None


@dataclass
class ParsedCatalog:
    format_id: str
    rules: list[ParsedRule]
    issues: list[Issue] = field(default_factory=list)  # errors reject the import, warnings don't
    name: str | None = None
    vendor: str | None = None
    product: str | None = None
    version: str | None = None
    attack_domain: str | None = None  # release the mappings were made against, if stated
    attack_version: str | None = None
    files_read: int = 0


class CatalogSource(Protocol):
    """A catalog input: a file, a folder or a .tar.gz, read through bounded readers."""

    name: str  # what the user gave (path or upload file name), for messages

    def files(self) -> list[tuple[str, bytes]]:
        """Every regular file as (path relative to the source, bytes), sorted by path."""
        ...

    def head(self, size: int = 4096) -> bytes:
        """The first bytes of a single-file source (b'' for folders and archives)."""
        ...

    @property
    def is_tree(self) -> bool:
        """True for folders and archives, False for one file."""
        ...


class Importer(Protocol):
    """A catalog format: describes itself, recognises its input cheaply, parses it purely, and
    says how its rules' log sources link to telemetry (app/catalog/registry.py lists what a new
    format provides)."""

    format_id: ClassVar[str]
    title: ClassVar[str]
    file_patterns: ClassVar[tuple[str, ...]]
    telemetry: ClassVar[FormatTelemetry | None]

    def sniff(self, source: CatalogSource) -> bool: ...

    def parse(self, source: CatalogSource, limits: Limits) -> ParsedCatalog: ...


def clean_text(value: str, cap: int) -> tuple[str, list[str]]:
    """`value` with line breaks as spaces, other control characters dropped, cut to `cap`
    characters; and what was changed, in words (empty when nothing was)."""
    changed: list[str] = []
    text = CONTROL_CHARS.sub("", _LINE_BREAKS.sub(" ", value))
    if text != value:
        changed.append("control characters removed")
    if len(text) > cap:
        text = text[:cap]
        changed.append(f"cut from {len(value)} to {cap} characters")
    return text, changed


def clean_rules(parsed: ParsedCatalog, limits: Limits) -> None:
    """Cap and clean every rule's id, name and title in place, one warning per rule changed, so
    one hostile rule cannot break a shared read (layers, workbooks, terminals). Two ids made
    equal by cleaning are refused, as any duplicate id is."""
    caps = {
        "id": limits.max_rule_id_chars,
        "name": limits.max_rule_title_chars,
        "title": limits.max_rule_title_chars,
    }
    owners: dict[str, ParsedRule] = {}
    for rule in parsed.rules:
        notes = []
        for fld, attr in (("id", "rule_id"), ("name", "name"), ("title", "title")):
            text, changed = clean_text(getattr(rule, attr), caps[fld])
            if changed:
                setattr(rule, attr, text)
                notes.append(f"{fld}: {', '.join(changed)}")
        where = Location(file=rule.path, line=rule.line)
        if not rule.rule_id:
            raise InvalidInput("a rule id is empty once control characters are removed", where)
        if notes:
            parsed.issues.append(
                Issue(f"rule {rule.rule_id!r}: {'; '.join(notes)}", where, "warning")
            )
        first = owners.setdefault(rule.rule_id, rule)
        if first is not rule:
            raise InvalidInput(
                f"rule id {rule.rule_id!r} is used twice once cleaned (first in {first.path})",
                where,
            )
