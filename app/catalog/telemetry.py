"""Which ATT&CK data components (and 18+ analytic log sources) a rule's log sources provide.

Coverage needs this to say "a rule exists, but the telemetry it needs is not collected". The
knowledge lives in kb/mappings/log-sources.yaml (data, with its sources); this module only loads
it into lower-cased dict lookups, so linking a rule costs a few dict probes per log-source entry
(thousands of rules are linked at import). Pure: no database, no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from app.core.errors import InvalidInput, Location

AnalyticKey = tuple[str, str]  # ATT&CK (log-source name, channel), e.g. ("WinEventLog:Sysmon", ...)
_EVENT_CODES = re.compile(r"(?:EventCode=|,)\s*(\d+)")
_ES_TYPE = re.compile(r"ES_EVENT_TYPE_\w+")
_INDEX_TAIL = "*-_. "
_SECTIONS = {"version", "components", "channels", "events", "event_overrides"}
_SECTIONS |= {"sigma", "splunk", "elastic"}
_SPLUNK_KEYS = {"event_prefixes", "data_sources", "name_prefixes"}


@dataclass(frozen=True)
class _Hit:
    """What one table entry yields: the matched key shown to users, components, analytic keys."""

    key: str
    components: tuple[str, ...]
    analytics: frozenset[AnalyticKey] = frozenset()
    coarse: bool = False  # a whole channel / product: dropped when a rule has a precise hit


@dataclass(frozen=True, eq=False)
class LogSourceMap:
    """The loaded tables, keyed by lower-cased names so matching is case-insensitive."""

    components: dict[str, str]  # lower-cased name -> ATT&CK spelling
    channel_names: dict[str, str]  # any spelling of a channel/provider -> channel id
    channels: dict[str, _Hit]  # channel id -> components when no event id is given
    events: dict[tuple[str, str], _Hit]  # (channel id, event id) -> hit
    sigma_categories: dict[str, _Hit]  # "product/category" ("*" = any product)
    sigma_services: dict[str, _Hit]  # "product/service"
    sigma_products: dict[str, _Hit]
    splunk_prefixes: dict[str, str]  # "sysmon eventid" -> channel id
    data_sources: dict[str, _Hit]  # Splunk data_source / Elastic "Data Source:" names
    name_prefixes: dict[str, str]  # "aws cloudtrail" -> key of data_sources
    indexes: dict[str, _Hit]  # normalised Elastic index pattern -> hit


class _Loader:
    """Checks the YAML while building lookups; InvalidInput names the file and the field."""

    def __init__(self, path: Path) -> None:
        self.file = str(path)
        self.components: dict[str, str] = {}
        self.attack: dict[str, list[str]] = {}  # channel id -> its ATT&CK log-source names

    def fail(self, where: str, message: str) -> InvalidInput:
        return InvalidInput(message, Location(file=self.file, field=where))

    def mapping(self, value: Any, where: str, keys: set[str] | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, "expected a mapping")
        if keys is not None and (extra := set(value) - keys):
            raise self.fail(where, f"unexpected keys {sorted(map(str, extra))}")
        return {str(k): v for k, v in value.items()}

    def strings(self, value: Any, where: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(where, "expected a list of non-empty strings")
        return value

    def names(self, value: Any, where: str) -> tuple[str, ...]:
        """Data-component names, checked against the `components` list and spelled as ATT&CK."""
        out = []
        for name in self.strings(value, where):
            if self.components and name.lower() not in self.components:
                raise self.fail(where, f"unknown ATT&CK data component {name!r}")
            out.append(self.components.get(name.lower(), name))
        return tuple(dict.fromkeys(out))

    def event_keys(self, channel: str, event_id: str) -> set[AnalyticKey]:
        names = self.attack.get(channel, []) if event_id.isdigit() else []
        return {(name, f"EventCode={event_id}") for name in names}

    def hit(self, key: str, value: Any, where: str, coarse: bool = False) -> _Hit:
        """An entry: a component list, or {components, analytics, events, coarse}."""
        if isinstance(value, list):
            return _Hit(key, self.names(value, where), coarse=coarse)
        spec = self.mapping(value, where, {"components", "analytics", "events", "coarse"})
        pairs = spec.get("analytics") or []
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) and s for s in p)
            for p in pairs
        ):
            raise self.fail(f"{where}.analytics", "expected a list of [name, channel] pairs")
        keys = {(p[0], p[1]) for p in pairs}
        for ref in self.strings(spec.get("events"), f"{where}.events"):
            channel, _, event_id = ref.partition(":")
            if channel not in self.attack or not event_id:
                raise self.fail(f"{where}.events", f"unknown channel in {ref!r}")
            keys |= self.event_keys(channel, event_id)
        comps = self.names(spec.get("components"), where)
        return _Hit(key, comps, frozenset(keys), bool(spec.get("coarse", coarse)))

    def table(self, value: Any, where: str, label: str, coarse: bool = False) -> dict[str, _Hit]:
        return {
            name.lower(): self.hit(f"{label}{name}", spec, f"{where}.{name}", coarse)
            for name, spec in self.mapping(value, where).items()
        }

    def channels(self, value: Any) -> tuple[dict[str, str], dict[str, _Hit]]:
        """(any spelling -> channel id, channel id -> its components when no event id)."""
        specs = {
            cid: self.mapping(spec, f"channels.{cid}", {"key", "attack", "names", "components"})
            for cid, spec in self.mapping(value, "channels").items()
        }
        self.attack = {c: self.strings(s.get("attack"), f"channels.{c}") for c, s in specs.items()}
        names: dict[str, str] = {}
        hits: dict[str, _Hit] = {}
        for cid, spec in specs.items():
            key = spec.get("key")
            if not isinstance(key, str) or not key:
                raise self.fail(f"channels.{cid}.key", "expected a non-empty string")
            comps = self.names(spec.get("components"), f"channels.{cid}")
            hits[cid] = _Hit(key, comps, coarse=True)
            for name in [cid, *self.strings(spec.get("names"), f"channels.{cid}.names")]:
                if names.setdefault(name.lower(), cid) != cid:
                    raise self.fail(f"channels.{cid}.names", f"{name!r} names two channels")
        return names, hits

    def events(self, doc: dict[str, Any], channels: dict[str, _Hit]) -> dict[tuple[str, str], _Hit]:
        """Derived `events`, then `event_overrides` (replace an id; an empty list drops it)."""
        out: dict[tuple[str, str], _Hit] = {}
        for section in ("events", "event_overrides"):
            for cid, rows in self.mapping(doc.get(section), section).items():
                if cid not in channels:
                    raise self.fail(f"{section}.{cid}", "unknown channel")
                sep = "/" if ":" in channels[cid].key else ":"
                for event_id, value in self.mapping(rows, f"{section}.{cid}").items():
                    eid, where = event_id.lower(), f"{section}.{cid}.{event_id}"
                    hit = self.hit(f"{channels[cid].key}{sep}{event_id}", value, where)
                    keys = hit.analytics or frozenset(self.event_keys(cid, eid))
                    out[(cid, eid)] = _Hit(hit.key, hit.components, keys, hit.coarse)
                    if not hit.components:  # an override with [] drops a misfiled id
                        del out[(cid, eid)]
        return out


def load_log_source_map(path: Path) -> LogSourceMap:
    """Read and check the tables; InvalidInput names the file and field on a bad structure."""
    ld = _Loader(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ld.fail("", f"cannot read log-source tables: {exc}") from exc
    doc = ld.mapping(raw, "(top level)", _SECTIONS)
    ld.components = {n.lower(): n for n in ld.strings(doc.get("components"), "components")}
    channel_names, channels = ld.channels(doc.get("channels"))
    sigma = ld.mapping(doc.get("sigma"), "sigma", {"categories", "services", "products"})
    splunk = ld.mapping(doc.get("splunk"), "splunk", _SPLUNK_KEYS)
    elastic = ld.mapping(doc.get("elastic"), "elastic", {"indexes", "data_sources"})
    data_sources = ld.table(splunk.get("data_sources"), "splunk.data_sources", "splunk:")
    elastic_names = ld.table(elastic.get("data_sources"), "elastic.data_sources", "elastic:", True)
    for name, hit in elastic_names.items():
        if data_sources.setdefault(name, hit) is not hit:
            raise ld.fail(f"elastic.data_sources.{name}", "also under splunk.data_sources")
    prefixes = ld.mapping(splunk.get("event_prefixes"), "splunk.event_prefixes")
    names = ld.mapping(splunk.get("name_prefixes"), "splunk.name_prefixes")
    if bad := [v for v in prefixes.values() if v not in channels]:
        raise ld.fail("splunk.event_prefixes", f"unknown channels {bad}")
    if bad := [v for v in names.values() if str(v).lower() not in data_sources]:
        raise ld.fail("splunk.name_prefixes", f"unknown data sources {bad}")
    indexes = ld.table(elastic.get("indexes"), "elastic.indexes", "elastic:").values()
    services = ld.table(sigma.get("services"), "sigma.services", "sigma:", True)
    for name, cid in channel_names.items():  # product: windows services are channels
        hit = _Hit(f"sigma:windows/service/{name}", channels[cid].components, coarse=True)
        services.setdefault(f"windows/{name}", hit)
    return LogSourceMap(
        components=ld.components,
        channel_names=channel_names,
        channels=channels,
        events=ld.events(doc, channels),
        sigma_categories=ld.table(sigma.get("categories"), "sigma.categories", "sigma:"),
        sigma_services=services,
        sigma_products=ld.table(sigma.get("products"), "sigma.products", "sigma:", True),
        splunk_prefixes={k.lower(): v for k, v in prefixes.items()},
        data_sources=data_sources,
        name_prefixes={k.lower(): str(v).lower() for k, v in names.items()},
        indexes={h.key.removeprefix("elastic:").lower().rstrip(_INDEX_TAIL): h for h in indexes},
    )


def _channel_hit(t: LogSourceMap, source: str, event_id: str | None) -> _Hit | None:
    """A provider / channel / Windows service name, with or without an event id."""
    if (cid := t.channel_names.get(source)) is None:
        return None
    return t.channels[cid] if event_id is None else t.events.get((cid, event_id))


def _sigma_hits(t: LogSourceMap, e: dict[str, str]) -> list[_Hit]:
    product, category, service = e.get("product", "*"), e.get("category"), e.get("service")
    cats, services, hits = t.sigma_categories, t.sigma_services, []
    if category and (hit := cats.get(f"{product}/{category}") or cats.get(f"*/{category}")):
        hits.append(hit)
    svc = None if "event_id" in e and product == "windows" else service  # _hits: channel event
    if svc and (hit := services.get(f"{product}/{svc}") or services.get(f"*/{svc}")):
        hits.append(hit)
    if not category and not service and (hit := t.sigma_products.get(product)):
        hits.append(hit)
    return hits


def _data_source_hit(t: LogSourceMap, text: str, original: str) -> _Hit | None:
    """Splunk "<prefix> <event id>" names, then exact names, then "<known source> <anything>"."""
    head, _, tail = text.rpartition(" ")
    if (cid := t.splunk_prefixes.get(head)) and (hit := t.events.get((cid, tail))):
        return _Hit(f"splunk:{original}", hit.components, hit.analytics, hit.coarse)
    if hit := t.data_sources.get(text):
        return hit
    words = text.split(" ")
    for n in range(len(words) - 1, 0, -1):
        if (name := t.name_prefixes.get(" ".join(words[:n]))) is not None:
            return _Hit(f"splunk:{original}", t.data_sources[name].components, coarse=True)
    return None


def _index_hit(t: LogSourceMap, pattern: str) -> _Hit | None:
    key = pattern.rstrip(_INDEX_TAIL)
    while key:
        if hit := t.indexes.get(key):
            return hit
        cut = max(key.rfind(c) for c in ".-_")
        key = key[:cut].rstrip(_INDEX_TAIL) if cut > 0 else ""
    return None


def _text_hit(t: LogSourceMap, text: str, original: str) -> _Hit | None:
    """Canonical free text: "Provider:EventID", a channel, a data-source or component name."""
    source, _, event_id = text.rpartition(":")
    hit = _channel_hit(t, source.strip(), event_id.strip()) if source else None
    hit = hit or _channel_hit(t, text, None) or _data_source_hit(t, text, original)
    if hit is None and (name := t.components.get(text.rpartition(": ")[2])):
        hit = _Hit(f"text:{original}", (name,))
    return hit


def _hits(entry: dict[str, str], t: LogSourceMap) -> list[_Hit]:
    raw = {k.lower(): v.strip() for k, v in entry.items() if isinstance(v, str) and v.strip()}
    e = {k: v.lower() for k, v in raw.items()}
    hits: list[_Hit] = []
    source = e.get("provider") or e.get("channel")
    if source is None and "event_id" in e and e.get("product") == "windows":
        source = e.get("service")  # a Sigma-style windows service with an event id
    if source is not None and (hit := _channel_hit(t, source, e.get("event_id"))):
        hits.append(hit)
    if "product" in e or "category" in e or "service" in e:
        hits += _sigma_hits(t, e)
    if "index" in e and (hit := _index_hit(t, e["index"])):
        hits.append(hit)
    if "data_source" in e and (hit := _data_source_hit(t, e["data_source"], raw["data_source"])):
        hits.append(hit)
    if "text" in e and (hit := _text_hit(t, e["text"], raw["text"])):
        hits.append(hit)
    return hits


def _rule_hits(log_sources: list[dict[str, str]], t: LogSourceMap) -> list[_Hit]:
    """A rule's hits; whole-channel / whole-product ones only if nothing more precise matched
    (an Elastic rule's "Data Source: Elastic Defend" tag beside its process index)."""
    hits = [hit for entry in log_sources for hit in _hits(entry, t)]
    return [hit for hit in hits if not hit.coarse] or hits


def data_components_for(
    log_sources: list[dict[str, str]], table: LogSourceMap
) -> list[tuple[str, str]]:
    """Sorted unique (data component, matched key) pairs for one rule's log sources."""
    return sorted({(c, hit.key) for hit in _rule_hits(log_sources, table) for c in hit.components})


def analytic_keys(log_sources: list[dict[str, str]], table: LogSourceMap) -> set[AnalyticKey]:
    """ATT&CK (name, channel) pairs the log sources correspond to, one event per pair: compare
    with analytic_ref_keys() of an 18+ analytic's x_mitre_log_source_references entries."""
    return {key for hit in _rule_hits(log_sources, table) for key in hit.analytics}


def analytic_ref_keys(name: str, channel: str) -> set[AnalyticKey]:
    """One log-source reference in analytic_keys() form: ATT&CK's list channels are split,
    "EventCode=4624, 4648" -> (name, "EventCode=4624"), (name, "EventCode=4648"), as are lists
    of Endpoint Security event types; any other channel is kept as written."""
    text = channel.strip()
    if text.startswith("EventCode="):
        return {(name, f"EventCode={n}") for n in _EVENT_CODES.findall(text)}
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 1 and all(_ES_TYPE.fullmatch(p) for p in parts):
        return {(name, p) for p in parts}
    return {(name, channel)}
