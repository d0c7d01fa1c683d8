"""Pure: a stored catalog's rules → STIX 2.1 objects (`stix2`) → bundle bytes.

One `identity` for the vendor, one `indicator` per rule, one `indicates` relationship per
technique the rule resolved to in the catalog's release (its `attack-pattern`), and a `grouping`
that names the catalog. Ids are UUIDv5 of fixed texts (catalog and rule id, indicator and
attack-pattern), and every timestamp is the catalog's import time, so two exports of one stored
catalog are byte-identical and a re-export updates the same objects in OpenCTI instead of adding
copies. What STIX has no field for travels as `x_kbmap_*` properties; `formats/stix.py` reads them
back, so the round trip is exact.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from stix2.base import _STIXBase
from stix2.serialization import STIXJSONEncoder
from stix2.utils import format_datetime
from stix2.v21 import (
    Bundle,
    ExternalReference,
    Grouping,
    Identity,
    Indicator,
    KillChainPhase,
    Relationship,
)

from app.catalog.formats.stix import REFERENCE_TYPE

NAMESPACE = uuid.UUID("6f1d7e2a-4b1c-5d8e-9a3f-6b0c2d4e8f17")  # kbmap's, fixed forever
KILL_CHAIN = "mitre-attack"
# a rule's language as STIX's open pattern-type vocabulary names it (pattern-type-ov: sigma);
# Elastic rules carry their own (`extra["language"]`), MaxPatrol XP has none, so kbmap names it
PATTERN_TYPES = {
    "sigma": "sigma",
    "splunk": "spl",
    "sentinel": "kql",
    "maxpatrol-xp": "x-kbmap-maxpatrol-xp",
}
ELASTIC_LANGUAGES = {"eql": "eql", "esql": "esql", "kuery": "kuery", "lucene": "lucene"}
PLACED = ("ok", "remapped")
# an http(s) URI in RFC 3986's characters (unreserved, reserved but brackets, %-escapes)
URI = re.compile(r"https?://(?:[A-Za-z0-9\-._~:/?#@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")


@dataclass(frozen=True)
class CatalogFacts:
    """What the bundle says of the catalog (a `Catalog` row's fields)."""

    name: str
    format_id: str
    vendor: str | None
    product: str | None
    version: str | None
    domain: str
    attack_version: str
    imported_at: datetime


@dataclass(frozen=True)
class WrittenMapping:
    """One stored mapping: as written, and what it resolved to."""

    written: str
    technique: str | None
    tactic: str | None
    outcome: str


@dataclass(frozen=True)
class RuleFacts:
    """One stored rule, every field the round trip restores."""

    rule_id: str
    name: str
    title: str
    description: str
    package: str | None
    severity: str | None
    status: str | None
    enabled: bool
    path: str | None
    platforms: list[str]
    references: list[str]
    log_sources: list[dict[str, str]]
    raw_tags: list[str]
    tactics: list[str]
    extra: dict[str, Any]
    body: str | None
    mappings: Sequence[WrittenMapping]


def stable_id(kind: str, text: str) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, text)}"


def indicator_id(catalog: str, rule_id: str) -> str:
    return stable_id("indicator", f"{catalog}/{rule_id}")


def pattern_type(format_id: str, rule: RuleFacts) -> str:
    """The rule's language in STIX's words; a rule without a body is a reference."""
    if rule.body is None:
        return REFERENCE_TYPE
    if format_id == "elastic":
        return ELASTIC_LANGUAGES.get(str(rule.extra.get("language", "")), "kuery")
    return PATTERN_TYPES.get(format_id, f"x-kbmap-{format_id}")


def bundle_bytes(
    catalog: CatalogFacts,
    rules: Sequence[RuleFacts],
    targets: Mapping[str, str],
    *,
    strict: bool = False,
) -> bytes:
    """The catalog as a STIX 2.1 bundle; `targets`: technique id → its attack-pattern STIX id in
    the catalog's release (mappings that did not resolve have none, and stay in
    `x_kbmap_techniques` only). `strict`: every object through stix2's full constructor (the
    default checks one per type, `_Maker`); the bytes are the same either way."""
    make = _Maker(strict)
    identity = _identity(make, catalog)
    objects: list[Any] = [identity]
    for rule in rules:
        indicator = _indicator(make, catalog, rule, identity.id)
        objects.append(indicator)
        objects += _relationships(make, catalog, rule, indicator.id, identity.id, targets)
    objects.append(_grouping(make, catalog, [o.id for o in objects[1:]] or [identity.id]))
    # the bundle and the grouping are checked with their first item (each item is an object
    # built above, already checked), then made with all of them
    bundle_id = stable_id("bundle", f"catalog/{catalog.name}")
    make(Bundle, id=bundle_id, objects=objects[:1])
    return _serialize(make(Bundle, id=bundle_id, objects=objects))


def _serialize(bundle: Bundle) -> bytes:
    """What stix2's encoder writes (`STIXJSONEncoder.default`: an object as its properties less
    the defaulted ones, a timestamp by `format_datetime`), driven by orjson instead of
    simplejson's pure Python loop and reading each object's properties directly rather than
    through its Mapping interface; every timestamp of an export is the same, so its text is
    made once. A test compares the result with `bundle.serialize()`."""
    stamps: dict[datetime, str] = {}

    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            if (text := stamps.get(value)) is None:
                text = stamps[value] = format_datetime(value)
            return text
        if isinstance(value, _STIXBase):
            inner, dropped = value._inner, value._defaulted_optional_properties
            return {k: v for k, v in inner.items() if k not in dropped} if dropped else inner
        return STIXJSONEncoder().default(value)

    return orjson.dumps(bundle, default=default, option=orjson.OPT_PASSTHROUGH_DATETIME)


class _Maker:
    """stix2 objects, fast: the first object of each class goes through its full constructor
    (every property cleaned and checked); later ones reuse that object's cleaned constants
    (type, spec_version, timestamps: the catalog's import time, the defaulted properties) and
    take the rest as built here, already in the cleaned form (text, lists of text, stix2
    sub-objects, custom properties the library never cleans). stix2 has no switch to skip its
    checks, and running them on every object costs ~1 ms each (~10 s for 4,000 rules); the
    tests compare both paths byte for byte and run stix2-validator on every export."""

    FIXED = ("type", "spec_version", "created", "modified", "valid_from")

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.first: dict[type, Any] = {}
        self.shared: dict[tuple[Any, ...], Any] = {}

    def shared_part(self, cls: type, **values: str) -> Any:
        """An immutable sub-object (a kill chain phase, a reference) made once per value."""
        key = (cls, *values.items())
        if (obj := self.shared.get(key)) is None or self.strict:
            obj = self.shared[key] = self(cls, **values)
        return obj

    def __call__(self, cls: type, **values: Any) -> Any:
        model = self.first.get(cls)
        if (
            model is None
            or self.strict
            or any(k in values and values[k] != model._inner.get(k) for k in self.FIXED)
        ):
            obj = cls(allow_custom=True, **values)
            self.first.setdefault(cls, obj)
            return obj
        return self._like(model, values)

    def _like(self, model: Any, values: dict[str, Any]) -> Any:
        """What `cls(**values)` builds, as `_STIXBase.__init__` orders it: spec properties in
        the class's order, then custom ones sorted; None and [] left out."""
        props = model._properties
        defaulted = [k for k in model._defaulted_optional_properties if k not in values]
        given = {k: v for k, v in values.items() if v is not None and v != []}
        known = model._inner
        base = {k: known[k] for k in (*self.FIXED, *defaulted) if k in known and k in props}
        base.update((k, v) for k, v in given.items() if k in props and k not in self.FIXED)
        inner = {k: base[k] for k in props if k in base}
        custom = sorted(k for k in given if k not in props)
        inner.update((k, given[k]) for k in custom)
        obj = object.__new__(type(model))
        obj._inner = inner
        obj._defaulted_optional_properties = defaulted
        obj._STIXBase__has_custom = bool(custom)
        return obj


def _identity(make: _Maker, catalog: CatalogFacts) -> Identity:
    who = catalog.vendor or catalog.product or catalog.name
    return make(
        Identity,
        id=stable_id("identity", f"vendor/{who}"),
        name=who,
        identity_class="organization",
        created=catalog.imported_at,
        modified=catalog.imported_at,
    )


def _grouping(make: _Maker, catalog: CatalogFacts, refs: list[str]) -> Grouping:
    """The catalog itself: its name, and what an import needs to validate it as it was."""
    facts = {
        "format": catalog.format_id,
        "vendor": catalog.vendor,
        "product": catalog.product,
        "version": catalog.version,
        "attack_domain": catalog.domain,
        "attack_version": catalog.attack_version,
    }
    values = {
        "id": stable_id("grouping", f"catalog/{catalog.name}"),
        "name": catalog.name,
        "context": "unspecified",
        "created": catalog.imported_at,
        "modified": catalog.imported_at,
        "x_kbmap_catalog": {k: v for k, v in facts.items() if v is not None},
    }
    make(Grouping, object_refs=refs[:1], **values)
    return make(Grouping, object_refs=refs, **values)


def _indicator(make: _Maker, catalog: CatalogFacts, rule: RuleFacts, identity: str) -> Indicator:
    kind = pattern_type(catalog.format_id, rule)
    pattern = rule.body if rule.body is not None else f"{catalog.name}/{rule.rule_id}"
    optional: dict[str, Any] = {
        "description": rule.description or None,
        "labels": rule.raw_tags or None,
        "kill_chain_phases": _phases(make, rule),
        "external_references": _references(make, rule.references),
    }
    return make(
        Indicator,
        id=indicator_id(catalog.name, rule.rule_id),
        created_by_ref=identity,
        created=catalog.imported_at,
        modified=catalog.imported_at,
        valid_from=catalog.imported_at,
        name=rule.title or rule.name or rule.rule_id,
        pattern=pattern,
        pattern_type=kind,
        **{k: v for k, v in optional.items() if v},
        **_custom(catalog, rule),
    )


def _custom(catalog: CatalogFacts, rule: RuleFacts) -> dict[str, Any]:
    """Every kbmap field STIX has no place for, as `x_kbmap_*` (empty ones left out)."""
    fields: dict[str, Any] = {
        "catalog": catalog.name,
        "rule_id": rule.rule_id,
        "name": rule.name,
        "title": rule.title,
        "package": rule.package,
        "severity": rule.severity,
        "status": rule.status,
        "enabled": rule.enabled,
        "path": rule.path,
        "techniques": [m.written for m in rule.mappings],
        "tactics": rule.tactics,
        "platforms": rule.platforms,
        "references": rule.references,
        "log_sources": rule.log_sources,
        "raw_tags": rule.raw_tags,
        "extra": rule.extra,
    }
    out = {f"x_kbmap_{k}": v for k, v in fields.items() if v not in (None, "", [], {})}
    out["x_kbmap_enabled"] = rule.enabled
    return out


def _phases(make: _Maker, rule: RuleFacts) -> list[KillChainPhase]:
    """Tactics the catalog pinned on a mapping, as ATT&CK's kill chain phases."""
    pinned = dict.fromkeys(m.tactic for m in rule.mappings if m.tactic)
    return [
        make.shared_part(KillChainPhase, kill_chain_name=KILL_CHAIN, phase_name=t)
        for t in pinned
        if t
    ]


def _references(make: _Maker, refs: list[str]) -> list[ExternalReference]:
    """Web references that are URIs (STIX's `url` is one) as external references; the rest
    ("https://x (Idea)", non-ASCII, brackets) stays in `x_kbmap_references` only."""
    urls = dict.fromkeys(r for r in refs if URI.fullmatch(r))
    return [make.shared_part(ExternalReference, source_name="reference", url=u) for u in urls]


def _relationships(
    make: _Maker,
    catalog: CatalogFacts,
    rule: RuleFacts,
    indicator: str,
    identity: str,
    targets: Mapping[str, str],
) -> list[Relationship]:
    """One `indicates` per distinct attack-pattern the rule's placed mappings resolved to."""
    found = dict.fromkeys(
        target
        for m in rule.mappings
        if m.outcome in PLACED and m.technique and (target := targets.get(m.technique))
    )
    return [
        make(
            Relationship,
            id=stable_id("relationship", f"{indicator}/{target}"),
            relationship_type="indicates",
            source_ref=indicator,
            target_ref=target,
            created_by_ref=identity,
            created=catalog.imported_at,
            modified=catalog.imported_at,
        )
        for target in found
    ]
