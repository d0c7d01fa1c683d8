"""MaxPatrol SIEM correlation rules in the open-xp-rules ("XP") layout.

One rule is one folder: `metainfo.yaml` (id, name, ATT&CK tactic -> techniques, data sources),
`i18n/i18n_en.yaml` and `i18n_ru.yaml` (localized description) and `rule.co` (the rule body, whose
emit block assigns `$importance`). In the upstream tree the rule folders sit under
`packages/<package>/correlation_rules/[<group>/]<rule>`; in a user's own tree any folder with a
`metainfo.yaml` beside a `rule.co` is a rule. Package `_meta` folders, normalization formulas,
enrichment rules and tabular lists are not detection rules and are left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import partial
from typing import Any, ClassVar

from app.catalog.base import CatalogSource, ParsedCatalog, ParsedRule
from app.catalog.formats._common import add, is_xp_tree, scalar_list, scalar_text
from app.catalog.telemetry import FormatTelemetry, Hit, LogSourceMap
from app.core.bounded_yaml import load_yaml_documents
from app.core.config import Limits
from app.core.errors import InvalidInput, Issue, Location

META = "metainfo.yaml"
BODY = "rule.co"
_IMPORTANCE = re.compile(r'^\s*\$importance\s*=\s*"([^"]*)"', re.M)
_CORRELATION_TYPE = re.compile(r'^\s*\$correlation_type\s*=\s*"([^"]*)"', re.M)
_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
_PLATFORM_HINTS = (("windows", "Windows"), ("macos", "macOS"), ("linux", "Linux"))
# a YAML timestamp as Python's str() spells it ("2021-09-02 10:00:00"), not ISO as Sigma does
_text = partial(scalar_text, iso_dates=False)
_str_list = partial(scalar_list, iso_dates=False)


def rule_folders(paths: Iterable[str]) -> list[str]:
    """Folders holding one correlation rule ('' is the source root).

    A folder counts when its metainfo.yaml sits beside a rule.co, or below a `correlation_rules`
    folder (so a rule whose body is missing is still reported, not dropped).
    """
    names: dict[str, set[str]] = {}
    for path in paths:
        folder, _, name = path.rpartition("/")
        names.setdefault(folder, set()).add(name)
    out = []
    for folder, inside in names.items():
        if META not in inside:
            continue
        parts = folder.split("/")
        if BODY in inside or "correlation_rules" in parts[:-1]:
            out.append(folder)
    return sorted(out)


class _Channels:
    """XP names a Windows provider (or channel) and maybe an event id: the format-neutral
    channel and event tables answer, so XP has no section of its own."""

    def hits(self, e: dict[str, str], raw: dict[str, str], t: LogSourceMap) -> list[Hit]:
        source = e.get("provider") or e.get("channel")
        hit = t.channel_hit(source, e.get("event_id")) if source else None
        return [hit] if hit else []


class MaxPatrolXPImporter:
    """Reads an open-xp-rules tree (folder or archive); one correlation-rule folder = one rule.

    Mapping: ObjectId -> rule_id, ContentAutoName -> name, the English i18n Description -> title
    and description (Russian one in extra["description_ru"]), ATTACK tactic -> techniques ->
    tactics/techniques as written plus extra["attack_pairs"], DataSources -> one log source per
    (provider, event id), the highest `$importance` in rule.co -> severity. `package` is the
    folder under packages/, extra["group"] the folder directly under correlation_rules.
    A broken metainfo.yaml drops that rule with a located error; a broken or missing i18n file
    or rule.co is reported but the rule is kept (without description or severity).
    """

    format_id: ClassVar[str] = "maxpatrol-xp"
    title: ClassVar[str] = "MaxPatrol SIEM correlation rules (XP, open-xp-rules layout)"
    file_patterns: ClassVar[tuple[str, ...]] = (META, BODY, "i18n/i18n_*.yaml")
    telemetry: ClassVar[FormatTelemetry] = FormatTelemetry(
        frozenset({"provider", "channel"}), lambda ld, value, t: _Channels()
    )

    def sniff(self, source: CatalogSource) -> bool:
        """Only trees: a lone metainfo.yaml is not a rule without its rule.co."""
        return source.is_tree and is_xp_tree(path for path, _ in source.files())

    def parse(self, source: CatalogSource, limits: Limits) -> ParsedCatalog:
        files = dict(source.files())
        issues: list[Issue] = []
        rules: list[ParsedRule] = []
        seen: dict[str, str] = {}
        files_read = 0
        for folder in rule_folders(files):
            reader = _RuleReader(folder, files, limits, issues)
            rule = reader.read()
            files_read += reader.files_read
            if rule is None:
                continue
            if rule.rule_id in seen:
                issues.append(
                    Issue(
                        f"duplicate rule id {rule.rule_id!r}: {seen[rule.rule_id]} and {rule.path};"
                        " the second is left out",
                        Location(
                            file=reader.meta_path, line=reader.line_of("ObjectId"), field="ObjectId"
                        ),
                    )
                )
                continue
            if len(rules) >= limits.max_rules:
                issues.append(
                    Issue(f"more than {limits.max_rules} rules", Location(file=source.name))
                )
                break
            seen[rule.rule_id] = rule.path or ""
            rules.append(rule)
        return ParsedCatalog(
            self.format_id,
            rules,
            issues,
            vendor="Positive Technologies",
            product="MaxPatrol SIEM",
            files_read=files_read,
        )


class _RuleReader:
    """Reads the files of one rule folder, adding what it finds wrong to `issues`."""

    def __init__(
        self, folder: str, files: dict[str, bytes], limits: Limits, issues: list[Issue]
    ) -> None:
        self.folder = folder
        self.prefix = f"{folder}/" if folder else ""
        self.meta_path = self.prefix + META
        self.files = files
        self.limits = limits
        self.issues = issues
        self.files_read = 0
        self.body: str | None = None  # rule.co, once `_body` has read it

    def line_of(self, key: str) -> int:
        """The line of a top-level `key:` in metainfo.yaml (for issue locations); 1 if absent."""
        data = self.files.get(self.meta_path, b"")
        found = re.search(rb"^" + re.escape(key.encode()) + rb"\s*:", data, re.M)
        return data.count(b"\n", 0, found.start()) + 1 if found else 1

    def _yaml(self, path: str) -> dict[str, Any] | None:
        """The first document of a YAML file as a mapping; None (with an issue) otherwise."""
        data = self.files.get(path)
        if data is None:
            return None
        self.files_read += 1
        try:
            docs = load_yaml_documents(data, name=path, max_aliases=self.limits.max_yaml_aliases)
        except InvalidInput as exc:
            self.issues.append(Issue(exc.message, exc.location or Location(file=path)))
            return None
        if not docs or not isinstance(docs[0], dict):
            self.issues.append(Issue("expected a YAML mapping", Location(file=path, line=1)))
            return None
        return docs[0]

    def read(self) -> ParsedRule | None:
        meta = self._yaml(self.meta_path)
        if meta is None:
            return None
        path = self.folder or "."
        rule_id = _text(meta.get("ObjectId"))
        if not rule_id:
            rule_id = path
            self.issues.append(
                Issue(
                    "no ObjectId; the folder path stands in for the rule id",
                    Location(file=self.meta_path, field="ObjectId"),
                    "warning",
                )
            )
        name = _text(meta.get("ContentAutoName")) or path.rpartition("/")[2]
        tactics, techniques, pairs = self._attack(
            _dig(meta, "ContentRelations", "Implements", "ATTACK")
        )
        expert = meta.get("ExpertContext")
        expert = expert if isinstance(expert, dict) else {}
        log_sources = self._log_sources(expert.get("DataSources"))
        en = self._i18n("en")
        ru = self._i18n("ru")
        importance, correlation_types = self._body()
        package, group = _package_group(self.folder)
        extra: dict[str, Any] = {
            "package": package,
            "group": group,
            "attack_pairs": pairs,
            "importance_values": importance,
            "correlation_type": correlation_types,
        }
        if ru:
            extra["description_ru"] = ru
        for key, out in (("Created", "created"), ("Updated", "updated")):
            if expert.get(key) is not None:
                extra[out] = _text(expert[key])
        for key, out in (
            ("KnowledgeHolders", "knowledge_holders"),
            ("Usecases", "usecases"),
            ("Falsepositives", "falsepositives"),
        ):
            if _str_list(expert.get(key)):
                extra[out] = _str_list(expert.get(key))
        if meta.get("Name") is not None:
            extra["name_field"] = _text(meta["Name"])
        return ParsedRule(
            rule_id=rule_id,
            name=name,
            title=en or name,
            description=en,
            package=package,
            techniques=techniques,
            tactics=tactics,
            log_sources=log_sources,
            platforms=_platforms(package, log_sources),
            severity=_highest(importance),
            references=_str_list(expert.get("References")),
            path=path,
            extra=extra,
            body=self.body,
        )

    def _attack(self, attack: Any) -> tuple[list[str], list[str], list[list[str]]]:
        """Tactics, techniques (both as written, de-duplicated) and the explicit pairs."""
        tactics: list[str] = []
        techniques: list[str] = []
        pairs: list[list[str]] = []
        if attack is None:
            return tactics, techniques, pairs
        if not isinstance(attack, dict):
            self.issues.append(
                Issue(
                    "ATTACK should map tactics to lists of techniques",
                    Location(file=self.meta_path, field="ContentRelations.Implements.ATTACK"),
                    "warning",
                )
            )
            return tactics, techniques, pairs
        for tactic_raw, listed in attack.items():
            tactic = _text(tactic_raw)
            add(tactics, tactic)
            for tech in listed if isinstance(listed, list) else [listed]:
                if tech is None:
                    continue
                add(techniques, _text(tech))
                pairs.append([tactic, _text(tech)])
        return tactics, techniques, pairs

    def _log_sources(self, sources: Any) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for item in sources if isinstance(sources, list) else []:
            if not isinstance(item, dict) or not item.get("Provider"):
                continue
            provider = _text(item["Provider"])
            ids = item.get("EventID")
            ids = ids if isinstance(ids, list) else [] if ids is None else [ids]
            entries = [{"provider": provider, "event_id": _text(i)} for i in ids if i is not None]
            for entry in entries or [{"provider": provider}]:
                if entry not in out:
                    out.append(entry)
        return out

    def _i18n(self, lang: str) -> str:
        doc = self._yaml(f"{self.prefix}i18n/i18n_{lang}.yaml")
        text = _text(doc.get("Description")).strip() if doc else ""
        if not text and lang == "en":
            self.issues.append(
                Issue(
                    "no English description (i18n/i18n_en.yaml)",
                    Location(file=self.meta_path),
                    "warning",
                )
            )
        return text

    def _body(self) -> tuple[list[str], list[str]]:
        """Literal `$importance` and `$correlation_type` values assigned in rule.co, in order."""
        data = self.files.get(self.prefix + BODY)
        if data is None:
            self.issues.append(
                Issue(
                    "no rule.co beside metainfo.yaml; severity unknown",
                    Location(file=self.meta_path),
                    "warning",
                )
            )
            return [], []
        self.files_read += 1
        text = data.decode("utf-8", "replace")
        self.body = text
        importance: list[str] = []
        types: list[str] = []
        for value in _IMPORTANCE.findall(text):
            add(importance, value)
        for value in _CORRELATION_TYPE.findall(text):
            add(types, value)
        return importance, types


def _package_group(folder: str) -> tuple[str | None, str | None]:
    """packages/<package>/correlation_rules/<group>/.../<rule> -> (package, group)."""
    parts = folder.split("/")
    package = parts[parts.index("packages") + 1] if "packages" in parts[:-1] else None
    if "correlation_rules" not in parts[:-1]:
        return package, None
    at = parts.index("correlation_rules")
    if package is None and at > 0:
        package = parts[at - 1]
    group = parts[at + 1] if at + 2 < len(parts) else None
    return package, group


def _platforms(package: str | None, log_sources: list[dict[str, str]]) -> list[str]:
    """From the package name (windows_open_package), else from the data-source providers."""
    if package and (platform := _platform_of(package)):
        return [platform]
    out: list[str] = []
    for source in log_sources:
        if platform := _platform_of(source["provider"]):
            add(out, platform)
    return out


def _platform_of(name: str) -> str | None:
    lower = name.lower()
    return next((platform for key, platform in _PLATFORM_HINTS if key in lower), None)


def _highest(values: list[str]) -> str | None:
    """The most severe importance (rule.co may assign several in branches)."""
    if not values:
        return None
    return max(values, key=lambda v: _RANK.get(v.lower(), -1))


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
