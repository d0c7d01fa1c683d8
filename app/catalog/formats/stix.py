"""STIX 2.1 bundles of indicators: kbmap's own STIX export, or any bundle (OpenCTI's) whose
indicators `indicates` ATT&CK attack-patterns.

An indicator is a rule. kbmap's export carries every rule field as `x_kbmap_*` properties and the
catalog's facts on its `grouping`, so those are restored exactly (techniques as first written,
validated again against the same release). A foreign indicator maps name, description, pattern
(the body), pattern_type and valid_from (kept in extra), labels (tags), external references
(URLs) and kill chain phases (tactics); its techniques are the ATT&CK ids (`external_references`
of `source_name` mitre-attack) of the attack-patterns it `indicates`; an attack-pattern the bundle
names only by its STIX id is kept as that id, which validation resolves against the release (a
mapping like any other: ok, remapped, or unknown in the report). A relationship or object of
another kind is a warning, never dropped silently; an indicator that indicates nothing is still a
rule (unmapped).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from app.catalog.base import CatalogSource, ParsedCatalog, ParsedRule
from app.catalog.formats._common import (
    check_rule_count,
    decode,
    error,
    report_duplicates,
    warning,
)
from app.catalog.telemetry import FormatTelemetry
from app.core.config import Limits
from app.core.errors import InvalidInput, Issue
from app.core.limits import json_depth_ok, loads_json

BUNDLE = re.compile(rb'"type"\s*:\s*"bundle"')
ATTACK_SOURCES = ("mitre-attack", "mitre-ics-attack", "mitre-mobile-attack")
KILL_CHAINS = ATTACK_SOURCES
USED = ("indicator", "relationship", "attack-pattern", "identity")
MAX_PATTERN_CHARS = 1_000_000  # a rule's body; real ones are a few kB
TEXT, FLAG, TEXTS, MAPS, MAP = "text", "flag", "texts", "maps", "map"
# x_kbmap_<name> → (ParsedRule attribute, kind)
KBMAP_FIELDS = {
    "rule_id": ("rule_id", TEXT),
    "name": ("name", TEXT),
    "title": ("title", TEXT),
    "package": ("package", TEXT),
    "severity": ("severity", TEXT),
    "status": ("status", TEXT),
    "path": ("path", TEXT),
    "enabled": ("enabled", FLAG),
    "techniques": ("techniques", TEXTS),
    "tactics": ("tactics", TEXTS),
    "platforms": ("platforms", TEXTS),
    "references": ("references", TEXTS),
    "raw_tags": ("raw_tags", TEXTS),
    "log_sources": ("log_sources", MAPS),
    "extra": ("extra", MAP),
}
CATALOG_FACTS = ("vendor", "product", "version", "attack_domain", "attack_version")

# the pattern type of a rule exported without its body (`stix_bundle` writes it): no body back
REFERENCE_TYPE = "x-kbmap-reference"


class StixImporter:
    """Reads one STIX 2.1 bundle (JSON) of indicators; see the module docstring."""

    format_id: ClassVar[str] = "stix"
    title: ClassVar[str] = "STIX 2.1 bundle of indicators (kbmap's STIX export, OpenCTI)"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.json",)
    # rules keep their log-source entries as their own format wrote them; every format's
    # reader links them by their keys, so this format brings no table of its own
    telemetry: ClassVar[FormatTelemetry | None] = None

    def sniff(self, source: CatalogSource) -> bool:
        """One JSON file whose first bytes say it is a STIX bundle."""
        if source.is_tree:
            return False
        head = source.head(65536).lstrip(b"\xef\xbb\xbf \t\r\n")
        return head[:1] == b"{" and bool(BUNDLE.search(head))

    def parse(self, source: CatalogSource, limits: Limits) -> ParsedCatalog:
        cat = ParsedCatalog(format_id=self.format_id, rules=[])
        files = source.files()
        if len(files) != 1:
            cat.issues.append(error(f"a STIX bundle is one file, found {len(files)}", source.name))
            return cat
        path, data = files[0]
        cat.files_read = 1
        doc = _load(path, data, cat.issues)
        if doc is not None:
            _Bundle(path, cat, limits.max_json_depth).read(doc)
            check_rule_count(len(cat.rules), limits, source.name)
            report_duplicates(cat.rules, cat.issues)
        return cat


def _load(path: str, data: bytes, issues: list[Issue]) -> Any:
    """The bundle as JSON (UTF-8, as STIX requires). orjson bounds nesting (1,024 levels); the
    free-form values a rule keeps are held to `max_json_depth` where they are read."""
    text = decode(data, path, issues)
    if text is None:
        return None
    try:
        return loads_json(text, name=path)
    except InvalidInput as exc:
        issues.append(Issue(exc.message, exc.location, "error"))
        return None


@dataclass
class _Bundle:
    """One bundle's objects, read in two passes: index them, then make a rule per indicator."""

    path: str
    cat: ParsedCatalog
    max_depth: int
    indicators: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    techniques: dict[str, str | None] = field(default_factory=dict)  # attack-pattern → Txxxx
    identities: dict[str, str] = field(default_factory=dict)
    links: dict[str, list[str]] = field(default_factory=dict)  # indicator → attack-patterns
    ignored: Counter[str] = field(default_factory=Counter)

    def fail(self, message: str, fld: str | None = None) -> None:
        self.cat.issues.append(error(message, self.path, None, fld))

    def warn(self, message: str, fld: str | None = None) -> None:
        self.cat.issues.append(warning(message, self.path, None, fld))

    def read(self, doc: Any) -> None:
        if not isinstance(doc, dict) or doc.get("type") != "bundle":
            self.fail('not a STIX bundle: the top level must be {"type": "bundle", ...}')
            return
        objects = doc.get("objects")
        if not isinstance(objects, list):
            self.fail("a STIX bundle's objects must be a list", "objects")
            return
        if doc.get("spec_version") is not None:  # only STIX 2.0 bundles carry it
            self.fail(
                f"a STIX {doc.get('spec_version')} bundle; kbmap reads STIX 2.1 (objects with "
                '"spec_version": "2.1")',
                "spec_version",
            )
            return
        relationships = [o for o in self._index(objects) if o[1].get("type") == "relationship"]
        for i, rel in relationships:
            self._relationship(i, rel)
        for kind, count in sorted(self.ignored.items()):
            self.warn(f"{count} {kind} ignored: a catalog reads indicators and what they indicate")
        if not self.indicators:
            self.fail("no indicator in the bundle: nothing to import as rules", "objects")
        for i, obj in self.indicators.values():
            rule = self._rule(i, obj)
            if rule is not None:
                self.cat.rules.append(rule)

    def _index(self, objects: list[Any]) -> list[tuple[int, dict[str, Any]]]:
        """Every object checked for a type and an id; indicators, attack-patterns and
        identities indexed, the kinds a catalog does not read counted."""
        out = []
        for i, obj in enumerate(objects):
            where = f"objects[{i}]"
            if not (isinstance(obj, dict) and _text(obj.get("type")) and _text(obj.get("id"))):
                self.fail("not a STIX object: type and id must be text", where)
                continue
            kind, oid = obj["type"], obj["id"]
            if kind in ("indicator", "relationship") and obj.get("spec_version") != "2.1":
                self.fail(f"{oid}: spec_version must be 2.1 (STIX 2.0 is not read)", where)
                continue
            out.append((i, obj))
            self._keep(i, kind, oid, obj)
        return out

    def _keep(self, i: int, kind: str, oid: str, obj: dict[str, Any]) -> None:
        if kind == "indicator":
            if oid in self.indicators:
                self.fail(f"indicator {oid} appears twice (objects[{self.indicators[oid][0]}])")
            self.indicators.setdefault(oid, (i, obj))
        elif kind == "attack-pattern":
            self.techniques[oid] = _attack_id(obj)
        elif kind == "identity":
            self.identities[oid] = _text(obj.get("name")) or oid
        elif kind == "grouping" and isinstance(obj.get("x_kbmap_catalog"), dict):
            self._catalog(obj)
        elif kind not in USED:
            self.ignored[f"{kind} object(s)"] += 1

    def _catalog(self, obj: dict[str, Any]) -> None:
        """kbmap's grouping: the catalog's name and the release it was validated against."""
        facts = obj["x_kbmap_catalog"]
        self.cat.name = _text(obj.get("name")) or None
        for key in CATALOG_FACTS:
            value = facts.get(key)
            if value is not None and not isinstance(value, str):
                self.fail(f"x_kbmap_catalog.{key} must be text", f"{obj['id']}.x_kbmap_catalog")
                continue
            setattr(self.cat, key, value)

    def _relationship(self, i: int, rel: dict[str, Any]) -> None:
        kind = rel.get("relationship_type")
        if kind != "indicates":
            self.ignored[f"relationship(s) of type {kind}"] += 1
            return
        source, target = rel.get("source_ref"), rel.get("target_ref")
        where = f"objects[{i}]"
        if not isinstance(source, str) or source not in self.indicators:
            self.fail(
                f"{rel['id']}: source_ref {source!r} is not an indicator of the bundle", where
            )
            return
        if not isinstance(target, str) or not target.startswith("attack-pattern--"):
            self.ignored[f"indicates relationship(s) to {str(target).partition('--')[0]}"] += 1
            return
        if not _STIX_ID.match(target):
            self.fail(f"{rel['id']}: target_ref {target[:80]!r} is not a STIX id", where)
            return
        self.links.setdefault(source, []).append(target)

    def _rule(self, i: int, obj: dict[str, Any]) -> ParsedRule | None:
        where = f"objects[{i}]"
        pattern, kind = obj.get("pattern"), obj.get("pattern_type")
        if not isinstance(pattern, str) or not isinstance(kind, str):
            self.fail(f"{obj['id']}: pattern and pattern_type must be text", where)
            return None
        if len(pattern) > MAX_PATTERN_CHARS:
            message = (
                f"{obj['id']}: pattern has {len(pattern)} characters, over {MAX_PATTERN_CHARS}"
            )
            self.fail(message, f"{where}.pattern")
            return None
        rule = ParsedRule(rule_id=obj["id"], path=self.path)
        rule.description = _text(obj.get("description"))
        rule.body = None if kind == REFERENCE_TYPE else pattern
        if isinstance(obj.get("x_kbmap_rule_id"), str):
            self._kbmap_fields(obj, rule, where)
        else:
            self._foreign_fields(obj, rule, where)
        return rule

    def _kbmap_fields(self, obj: dict[str, Any], rule: ParsedRule, where: str) -> None:
        """kbmap's own export: every field back exactly as it was stored."""
        rule.path = None
        for key, (attr, kind) in KBMAP_FIELDS.items():
            value = obj.get(f"x_kbmap_{key}")
            if value is None:
                continue
            if not _is(value, kind):
                self.fail(f"{obj['id']}: x_kbmap_{key} is not {kind}", f"{where}.x_kbmap_{key}")
                continue
            if kind == MAP and not json_depth_ok(value, self.max_depth):
                message = f"{obj['id']}: x_kbmap_{key} nests deeper than {self.max_depth} levels"
                self.fail(message, f"{where}.x_kbmap_{key}")
                continue
            setattr(rule, attr, value)

    def _foreign_fields(self, obj: dict[str, Any], rule: ParsedRule, where: str) -> None:
        """Another tool's indicator: what STIX itself says of it."""
        rule.name = rule.title = _text(obj.get("name")) or obj["id"]
        rule.raw_tags = _texts(obj.get("labels"))
        rule.platforms = _texts(obj.get("x_mitre_platforms"))
        refs = obj.get("external_references")
        rule.references = [
            r["url"] for r in refs or () if isinstance(r, dict) and isinstance(r.get("url"), str)
        ]
        rule.tactics = [
            p["phase_name"]
            for p in obj.get("kill_chain_phases") or ()
            if isinstance(p, dict)
            and p.get("kill_chain_name") in KILL_CHAINS
            and isinstance(p.get("phase_name"), str)
        ]
        if obj.get("revoked") is True:
            rule.enabled, rule.status = False, "revoked"
        for key in ("pattern_type", "valid_from", "valid_until", "created_by_ref"):
            if isinstance(obj.get(key), str):
                rule.extra[key] = obj[key]
        if (who := self.identities.get(rule.extra.get("created_by_ref", ""))) is not None:
            rule.extra["created_by"] = who
        for target in dict.fromkeys(self.links.get(obj["id"], ())):
            self._technique(rule, target, where)

    def _technique(self, rule: ParsedRule, target: str, where: str) -> None:
        """The technique an indicator indicates: its ATT&CK id when the bundle holds the
        attack-pattern, else its STIX id, which validation resolves against the release."""
        tid = self.techniques.get(target, target)
        if tid is None:
            self.warn(f"{rule.rule_id} indicates {target}, which has no mitre-attack id", where)
        elif tid not in rule.techniques:
            rule.techniques.append(tid)


_STIX_ID = re.compile(r"^attack-pattern--[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")


def _attack_id(obj: dict[str, Any]) -> str | None:
    """The ATT&CK id (T1059.001) of an attack-pattern, from its mitre-attack reference."""
    for ref in obj.get("external_references") or ():
        if isinstance(ref, dict) and ref.get("source_name") in ATTACK_SOURCES:
            ext = ref.get("external_id")
            if isinstance(ext, str) and ext:
                return ext
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _texts(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _is(value: Any, kind: str) -> bool:
    if kind == TEXT:
        return isinstance(value, str)
    if kind == FLAG:
        return isinstance(value, bool)
    if kind == MAP:
        return isinstance(value, dict)
    if not isinstance(value, list):
        return False
    if kind == TEXTS:
        return all(isinstance(v, str) for v in value)
    return all(isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) for v in value)
