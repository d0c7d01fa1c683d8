"""Sigma rules: the SigmaHQ repository layout, a user's own folder of rules, or one .yml file.

One file is one rule. In the SigmaHQ layout every YAML file under the rule folders below is in
scope (a file that is not a rule there is an issue, not a skip); in any other tree only the files
that look like rules (a `title` plus `detection` or `logsource`) are read, since such a folder
may also hold configuration or pipeline YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from app.catalog.base import CatalogSource, ParsedCatalog, ParsedRule
from app.catalog.formats._common import add, is_xp_tree, scalar_list, scalar_text
from app.catalog.parallel import Pending, start_map
from app.catalog.telemetry import FormatTelemetry, Hit, Loader, LogSourceMap
from app.core.bounded_yaml import load_yaml_documents, utf8_head, yaml_text
from app.core.config import Limits
from app.core.errors import InvalidInput, Issue, Location

SCOPE_FOLDERS = (
    "rules",
    "rules-emerging-threats",
    "rules-threat-hunting",
    "rules-compliance",
    "rules-placeholder",
    "deprecated",
    "unsupported",
)
YAML_SUFFIXES = (".yml", ".yaml")
DISABLED_STATUSES = frozenset({"deprecated", "unsupported"})
LOGSOURCE_KEYS = ("product", "category", "service")
PLATFORMS = {
    "windows": "Windows",
    "linux": "Linux",
    "macos": "macOS",
    "azure": "Azure",
    "aws": "AWS",
    "gcp": "GCP",
    "m365": "Microsoft 365",
    "okta": "Okta",
    "github": "GitHub",
    "bitbucket": "Bitbucket",
    "kubernetes": "Kubernetes",
    "cisco": "Cisco",
    "zeek": "Zeek",
    "fortigate": "FortiGate",
    "paloalto": "Palo Alto",
}
_TECHNIQUE = re.compile(r"attack\.t\d{4}(?:\.\d{3})?", re.I)
_TACTIC_ID = re.compile(r"attack\.ta\d{4}", re.I)
# groups (g), software (s), campaigns (c), data sources (ds), mitigations (m): not tactics
_OTHER_ID = re.compile(r"attack\.[a-z]{1,2}\d{4}", re.I)
_TOP_KEY = {
    k: re.compile(rb"^" + k + rb"\s*:", re.M) for k in (b"title", b"logsource", b"detection")
}
_SNIFF_FILES = 8
_SNIFF_BYTES = 16384


def _key_line(data: bytes, key: str) -> int:
    """The line of a top-level `key:` (for issue locations); 1 when not found."""
    found = re.search(rb"^" + re.escape(key.encode()) + rb"\s*:", data, re.M)
    return data.count(b"\n", 0, found.start()) + 1 if found else 1


def _has_keys(data: bytes, *keys: bytes) -> bool:
    head = utf8_head(data)
    return all(_TOP_KEY[k].search(head) for k in keys)


def _looks_like_rule(data: bytes) -> bool:
    """A rule candidate in a user's tree: a title plus detection or logsource."""
    return _has_keys(data, b"title") and (
        _has_keys(data, b"detection") or _has_keys(data, b"logsource")
    )


def scope_root(paths: list[str]) -> str | None:
    """The prefix under which the SigmaHQ rule folders sit ('' or 'sigma-master/'), else None."""
    tops = {p.partition("/")[0] for p in paths if "/" in p}
    if tops & set(SCOPE_FOLDERS):
        return ""
    if len(tops) == 1:
        root = next(iter(tops)) + "/"
        if any(p.removeprefix(root).partition("/")[0] in SCOPE_FOLDERS for p in paths):
            return root
    return None


@dataclass(frozen=True)
class SigmaLogSources:
    """Sigma's part of the log-source tables (section `sigma`): "product/category" and
    "product/service" keys ("*" = any product), and a product alone."""

    categories: dict[str, Hit]
    services: dict[str, Hit]
    products: dict[str, Hit]

    @classmethod
    def load(cls, ld: Loader, value: Any, t: LogSourceMap) -> SigmaLogSources:
        sigma = ld.mapping(value, "sigma", {"categories", "services", "products"})
        services = ld.table(sigma.get("services"), "sigma.services", "sigma:", True)
        for name, cid in t.channel_names.items():  # product: windows services are channels
            hit = Hit(f"sigma:windows/service/{name}", t.channels[cid].components, coarse=True)
            services.setdefault(f"windows/{name}", hit)
        return cls(
            categories=ld.table(sigma.get("categories"), "sigma.categories", "sigma:"),
            services=services,
            products=ld.table(sigma.get("products"), "sigma.products", "sigma:", True),
        )

    def hits(self, e: dict[str, str], raw: dict[str, str], t: LogSourceMap) -> list[Hit]:
        product, category, service = e.get("product", "*"), e.get("category"), e.get("service")
        channel_event = "event_id" in e and product == "windows"  # the service is a channel
        hits = _channel_event(e, t) if channel_event else []
        cats, services = self.categories, self.services
        if category and (hit := cats.get(f"{product}/{category}") or cats.get(f"*/{category}")):
            hits.append(hit)
        svc = None if channel_event else service
        if svc and (hit := services.get(f"{product}/{svc}") or services.get(f"*/{svc}")):
            hits.append(hit)
        if not category and not service and (hit := self.products.get(product)):
            hits.append(hit)
        return hits


def _channel_event(e: dict[str, str], t: LogSourceMap) -> list[Hit]:
    """A windows service with an event id is that channel's event, unless the entry also names
    a provider or channel (which then answers instead, as the XP format's entries do)."""
    if "provider" in e or "channel" in e or "service" not in e:
        return []
    hit = t.channel_hit(e["service"], e["event_id"])
    return [hit] if hit else []


class SigmaImporter:
    """Reads Sigma YAML rules; see the module docstring for what is in scope.

    Tags: `attack.tNNNN[.NNN]` -> techniques, `attack.taNNNN` and named tactics
    (`attack.credential-access`, `attack.credential_access`) -> tactics, all as written; group,
    software, campaign and other ATT&CK ids -> extra["attack_other_tags"], non-ATT&CK tags ->
    extra["other_tags"]. `enabled` is False only for `status: deprecated` or `unsupported`
    (the folder alone does not disable a rule). Legacy multi-document files (`action: global`):
    the first document with a title gives the metadata, later documents fill keys it lacks (so
    an `id` that only a later document states is used), and every document's logsource is kept.
    """

    format_id: ClassVar[str] = "sigma"
    title: ClassVar[str] = "Sigma rules (YAML)"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.yml", "*.yaml")
    telemetry: ClassVar[FormatTelemetry] = FormatTelemetry(
        frozenset(LOGSOURCE_KEYS), SigmaLogSources.load, section="sigma"
    )

    def sniff(self, source: CatalogSource) -> bool:
        """A few YAML files (in scope first) must carry top-level logsource and detection."""
        if not source.is_tree:
            return _has_keys(source.head(_SNIFF_BYTES), b"logsource", b"detection")
        files = source.files()
        paths = [p for p, _ in files]
        if is_xp_tree(paths):
            return False
        root = scope_root(paths)
        candidates = [(p, d) for p, d in files if p.lower().endswith(YAML_SUFFIXES)]
        if root is not None:
            candidates.sort(key=lambda item: _folder(item[0], root) is None)
        for _, data in candidates[:_SNIFF_FILES]:
            if _has_keys(data[:_SNIFF_BYTES], b"logsource", b"detection"):
                return True
        return False

    def parse(
        self, source: CatalogSource, limits: Limits, *, parallel: bool | None = None
    ) -> ParsedCatalog:
        return self.start(source, limits, parallel=parallel).result()

    def start(
        self, source: CatalogSource, limits: Limits, *, parallel: bool | None = None
    ) -> Pending[ParsedCatalog]:
        """Begin the parse: a large tree's files are read on a second core meanwhile
        (`app.catalog.parallel`; `parallel` forces either path). Whichever path reads them, the
        rules and issues come out the same and in file order."""
        selected, strict = _selected(source)
        read = partial(_read_file, strict=strict, max_aliases=limits.max_yaml_aliases)
        sizes = [len(data) for _, data, _ in selected]
        return start_map(read, selected, sizes, parallel=parallel).then(
            partial(_assemble, source, selected, limits)
        )


def _selected(source: CatalogSource) -> tuple[list[tuple[str, bytes, str | None]], bool]:
    """The files to read as (path, bytes, SigmaHQ folder), and whether every one must be a rule
    (the SigmaHQ layout) rather than only those that look like rules."""
    files = source.files()
    if not source.is_tree:
        return [(path, data, None) for path, data in files[:1]], True
    root = scope_root([p for p, _ in files])
    if root is None:
        return [
            (p, d, None)
            for p, d in files
            if p.lower().endswith(YAML_SUFFIXES) and _looks_like_rule(d)
        ], False
    return [
        (path, data, folder)
        for path, data in files
        if (folder := _folder(path, root)) is not None and path.lower().endswith(YAML_SUFFIXES)
    ], True


def _read_file(
    job: tuple[str, bytes, str | None], *, strict: bool, max_aliases: int
) -> tuple[ParsedRule | None, list[Issue]]:
    """One file's rule (None for a non-rule) and its issues: the unit a parse runs in parallel."""
    path, data, folder = job
    try:
        docs = load_yaml_documents(data, name=path, max_aliases=max_aliases)  # libyaml decodes
        text = yaml_text(data, name=path)  # the rule's body (bytes parse faster than a str)
    except InvalidInput as exc:
        return None, [Issue(exc.message, exc.location or Location(file=path))]
    issues: list[Issue] = []
    rule = _rule(path, docs, folder, strict, issues)
    if rule is not None:
        rule.body = text
    return rule, issues


def _assemble(
    source: CatalogSource,
    selected: list[tuple[str, bytes, str | None]],
    limits: Limits,
    results: list[tuple[ParsedRule | None, list[Issue]]],
) -> ParsedCatalog:
    """The catalog from per-file results in file order: duplicate ids and the rule cap are
    decided here, in one pass, so they do not depend on which process read which file."""
    issues: list[Issue] = []
    rules: list[ParsedRule] = []
    seen: dict[str, str] = {}
    for (path, data, _), (rule, found) in zip(selected, results, strict=True):
        issues.extend(found)
        if rule is None:
            continue
        if rule.rule_id in seen:
            issues.append(
                Issue(
                    f"duplicate rule id {rule.rule_id!r}: {seen[rule.rule_id]} and {path};"
                    " the second is left out",
                    Location(file=path, line=_key_line(data, "id"), field="id"),
                )
            )
            continue
        if len(rules) >= limits.max_rules:
            issues.append(Issue(f"more than {limits.max_rules} rules", Location(file=source.name)))
            break
        seen[rule.rule_id] = path
        rules.append(rule)
    return ParsedCatalog(
        SigmaImporter.format_id, rules, issues, product="Sigma", files_read=len(selected)
    )


def _folder(path: str, root: str) -> str | None:
    """The SigmaHQ top folder a path sits in (rules, deprecated, ...), None when out of scope."""
    if not path.startswith(root):
        return None
    top, sep, _ = path[len(root) :].partition("/")
    return top if sep and top in SCOPE_FOLDERS else None


def _rule(
    path: str, docs: list[Any], folder: str | None, strict: bool, issues: list[Issue]
) -> ParsedRule | None:
    """One rule from a file's documents; None for a non-rule (an issue when in scope)."""
    maps = [d for d in docs if isinstance(d, dict)]
    if not maps:
        if strict:
            issues.append(Issue("not a Sigma rule: no YAML mapping", Location(file=path, line=1)))
        return None
    head = next((d for d in maps if d.get("title")), maps[0])
    meta: dict[Any, Any] = dict(head)
    for doc in maps:
        for key, value in doc.items():
            if meta.get(key) is None:
                meta[key] = value
    if not strict and not (meta.get("title") and (meta.get("detection") or meta.get("logsource"))):
        return None
    title = scalar_text(meta.get("title"))
    if not title:
        issues.append(
            Issue("rule has no title", Location(file=path, line=1, field="title"), "warning")
        )
    rule_id = scalar_text(meta.get("id"))
    if not rule_id:
        rule_id = path
        issues.append(
            Issue(
                "rule has no id; the file path stands in",
                Location(file=path, line=1, field="id"),
                "warning",
            )
        )
    raw_tags = scalar_list(meta.get("tags"))
    techniques: list[str] = []
    tactics: list[str] = []
    attack_other: list[str] = []
    other: list[str] = []
    for tag in raw_tags:
        if _TECHNIQUE.fullmatch(tag):
            add(techniques, tag)
        elif _TACTIC_ID.fullmatch(tag):
            add(tactics, tag)
        elif _OTHER_ID.fullmatch(tag):
            add(attack_other, tag)
        elif tag.lower().startswith("attack."):
            add(tactics, tag)
        else:
            add(other, tag)
    log_sources: list[dict[str, str]] = []
    for doc in maps:
        logsource = doc.get("logsource")
        if isinstance(logsource, dict):
            entry = {
                k: scalar_text(logsource[k]) for k in LOGSOURCE_KEYS if logsource.get(k) is not None
            }
            if entry and entry not in log_sources:
                log_sources.append(entry)
    platforms: list[str] = []
    for entry in log_sources:
        if "product" in entry:
            add(platforms, PLATFORMS.get(entry["product"].lower(), entry["product"]))
    status = scalar_text(meta.get("status")) or None
    extra: dict[str, Any] = {
        "yaml_documents": len(maps),
        "attack_other_tags": attack_other,
        "other_tags": other,
    }
    if folder:
        extra["folder"] = folder
    for key in ("author", "date", "modified"):
        if meta.get(key) is not None:
            extra[key] = scalar_text(meta[key])
    related = meta.get("related")
    if isinstance(related, list):
        extra["related"] = [
            {scalar_text(k): scalar_text(v) for k, v in r.items()}
            for r in related
            if isinstance(r, dict)
        ]
    return ParsedRule(
        rule_id=rule_id,
        name=title,
        title=title,
        description=scalar_text(meta.get("description")).strip(),
        techniques=techniques,
        tactics=tactics,
        log_sources=log_sources,
        platforms=platforms,
        severity=scalar_text(meta.get("level")) or None,
        status=status,
        enabled=(status or "").lower() not in DISABLED_STATUSES,
        references=scalar_list(meta.get("references")),
        path=path,
        line=1,
        raw_tags=raw_tags,
        extra=extra,
    )
