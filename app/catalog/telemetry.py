"""Which ATT&CK data components (and 18+ analytic log sources) a rule's log sources provide.

Coverage needs this to say "a rule exists, but the telemetry it needs is not collected". The
knowledge lives in kb/mappings/log-sources.yaml (data, with its sources). This module loads its
format-neutral part (ATT&CK data components, Windows channels and their events) and runs the
machinery; each catalog format brings the rest as its importer's `telemetry` (a FormatTelemetry:
its section of the tables and the code that matches its log-source entries), so a format, a
plugin's too, is one file. Tables are lower-cased dict lookups, so linking a rule costs a few
dict probes per log-source entry (thousands of rules are linked at import). Pure: no database,
no network.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import yaml

from app.catalog import registry
from app.core.errors import InvalidInput, Location

AnalyticKey = tuple[str, str]  # ATT&CK (log-source name, channel), e.g. ("WinEventLog:Sysmon", ...)
_EVENT_CODES = re.compile(r"(?:EventCode=|,)\s*(\d+)")
_ES_TYPE = re.compile(r"ES_EVENT_TYPE_\w+")
_NEUTRAL = {"version", "components", "channels", "events", "event_overrides"}


@dataclass(frozen=True)
class Hit:
    """What one table entry yields: the matched key shown to users, components, analytic keys."""

    key: str
    components: tuple[str, ...]
    analytics: frozenset[AnalyticKey] = frozenset()
    coarse: bool = False  # a whole channel / product: dropped when a rule has a precise hit


class Reader(Protocol):
    """A format's loaded tables, asked about one log-source entry of the keys it reads."""

    def hits(self, e: dict[str, str], raw: dict[str, str], t: LogSourceMap) -> list[Hit]:
        """`e`: the entry's non-empty values lower-cased, `raw`: as written (for matched keys)."""
        ...


@dataclass(frozen=True)
class FormatTelemetry:
    """What a format brings to linking, as its importer's `telemetry` (pySigma's backends carry
    their pipeline the same way): the log-source entry keys it reads, and `load`, which checks
    its section of the tables (None when it has none) and returns the Reader for those keys."""

    keys: frozenset[str]
    load: Callable[[Loader, Any, LogSourceMap], Reader]
    section: str | None = None  # its top-level key in the tables file
    file: str | None = None  # None: log-sources.yaml; a plugin's own file (absolute, or beside)
    # an entry key whose values the import report names when no entry carrying them links
    # (Sentinel's `data_type`: a table missing from its section is worth saying)
    report_key: str | None = None


@dataclass(frozen=True, eq=False)
class LogSourceMap:
    """The loaded tables, keyed by lower-cased names so matching is case-insensitive."""

    components: dict[str, str]  # lower-cased name -> ATT&CK spelling
    channel_names: dict[str, str]  # any spelling of a channel/provider -> channel id
    channels: dict[str, Hit]  # channel id -> components when no event id is given
    events: dict[tuple[str, str], Hit]  # (channel id, event id) -> hit
    readers: tuple[tuple[frozenset[str], Reader], ...] = ()  # each format's, registry order

    def channel_hit(self, source: str, event_id: str | None) -> Hit | None:
        """A provider / channel / Windows service name, with or without an event id."""
        if (cid := self.channel_names.get(source)) is None:
            return None
        return self.channels[cid] if event_id is None else self.events.get((cid, event_id))

    def first_hit(self, key: str, value: str, original: str) -> Hit | None:
        """`value` read as an entry's `key` by the formats that read that key, first hit wins
        (the canonical format's free text is tried as a data-source name so)."""
        e, raw = {key: value}, {key: original}
        for keys, reader in self.readers:
            if key in keys and (hits := reader.hits(e, raw, self)):
                return hits[0]
        return None


class Loader:
    """Checks the YAML while building lookups; InvalidInput names the file and the field."""

    def __init__(self, path: Path) -> None:
        self.file = str(path)
        self.components: dict[str, str] = {}
        self.attack: dict[str, list[str]] = {}  # channel id -> its ATT&CK log-source names

    def at(self, path: Path) -> Loader:
        """The same checks, with errors naming another file (a plugin's own tables)."""
        other = Loader(path)
        other.components, other.attack = self.components, self.attack
        return other

    def fail(self, where: str, message: str) -> InvalidInput:
        return InvalidInput(message, Location(file=self.file, field=where))

    def read(self, path: Path, sections: set[str]) -> dict[str, Any]:
        """The file's top-level mapping, holding only `sections`."""
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise self.fail("", f"cannot read log-source tables: {exc}") from exc
        return self.mapping(raw, "(top level)", sections)

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

    def hit(self, key: str, value: Any, where: str, coarse: bool = False) -> Hit:
        """An entry: a component list, or {components, analytics, events, coarse}."""
        if isinstance(value, list):
            return Hit(key, self.names(value, where), coarse=coarse)
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
        return Hit(key, comps, frozenset(keys), bool(spec.get("coarse", coarse)))

    def table(self, value: Any, where: str, label: str, coarse: bool = False) -> dict[str, Hit]:
        """A `name: entry` section as lower-cased name -> Hit keyed "<label><name>"."""
        return {
            name.lower(): self.hit(f"{label}{name}", spec, f"{where}.{name}", coarse)
            for name, spec in self.mapping(value, where).items()
        }

    def channels(self, value: Any) -> tuple[dict[str, str], dict[str, Hit]]:
        """(any spelling -> channel id, channel id -> its components when no event id)."""
        specs = {
            cid: self.mapping(spec, f"channels.{cid}", {"key", "attack", "names", "components"})
            for cid, spec in self.mapping(value, "channels").items()
        }
        self.attack = {c: self.strings(s.get("attack"), f"channels.{c}") for c, s in specs.items()}
        names: dict[str, str] = {}
        hits: dict[str, Hit] = {}
        for cid, spec in specs.items():
            key = spec.get("key")
            if not isinstance(key, str) or not key:
                raise self.fail(f"channels.{cid}.key", "expected a non-empty string")
            comps = self.names(spec.get("components"), f"channels.{cid}")
            hits[cid] = Hit(key, comps, coarse=True)
            for name in [cid, *self.strings(spec.get("names"), f"channels.{cid}.names")]:
                if names.setdefault(name.lower(), cid) != cid:
                    raise self.fail(f"channels.{cid}.names", f"{name!r} names two channels")
        return names, hits

    def events(self, doc: dict[str, Any], channels: dict[str, Hit]) -> dict[tuple[str, str], Hit]:
        """Derived `events`, then `event_overrides` (replace an id; an empty list drops it)."""
        out: dict[tuple[str, str], Hit] = {}
        for section in ("events", "event_overrides"):
            for cid, rows in self.mapping(doc.get(section), section).items():
                if cid not in channels:
                    raise self.fail(f"{section}.{cid}", "unknown channel")
                sep = "/" if ":" in channels[cid].key else ":"
                for event_id, value in self.mapping(rows, f"{section}.{cid}").items():
                    eid, where = event_id.lower(), f"{section}.{cid}.{event_id}"
                    hit = self.hit(f"{channels[cid].key}{sep}{event_id}", value, where)
                    keys = hit.analytics or frozenset(self.event_keys(cid, eid))
                    out[(cid, eid)] = Hit(hit.key, hit.components, keys, hit.coarse)
                    if not hit.components:  # an override with [] drops a misfiled id
                        del out[(cid, eid)]
        return out


def load_log_source_map(
    path: Path, formats: Iterable[FormatTelemetry] | None = None
) -> LogSourceMap:
    """Read and check the neutral tables in `path`, then each format's section (the registry's
    formats unless given); InvalidInput names the file and field on a bad structure."""
    specs = list(registry.telemetry() if formats is None else formats)
    ld = Loader(path)
    own = {s.section for s in specs if s.section and s.file is None}
    doc = ld.read(path, _NEUTRAL | own)
    ld.components = {n.lower(): n for n in ld.strings(doc.get("components"), "components")}
    channel_names, channels = ld.channels(doc.get("channels"))
    neutral = LogSourceMap(ld.components, channel_names, channels, ld.events(doc, channels))
    readers = [(s.keys, _load_format(s, ld, doc, neutral)) for s in specs]
    return replace(neutral, readers=tuple(readers))


def _load_format(
    spec: FormatTelemetry, ld: Loader, doc: dict[str, Any], neutral: LogSourceMap
) -> Reader:
    """One format's reader, from its section of log-sources.yaml or of its own file."""
    if spec.section is not None and spec.file is not None:
        path = Path(ld.file).parent / spec.file
        ld = ld.at(path)
        doc = ld.read(path, {"version", spec.section})
    return spec.load(ld, doc.get(spec.section) if spec.section else None, neutral)


def _hits(entry: dict[str, str], t: LogSourceMap) -> list[Hit]:
    raw = {k.lower(): v.strip() for k, v in entry.items() if isinstance(v, str) and v.strip()}
    e = {k: v.lower() for k, v in raw.items()}
    hits: list[Hit] = []
    for keys, reader in t.readers:
        if not keys.isdisjoint(e):
            hits += reader.hits(e, raw, t)
    return hits


def _rule_hits(log_sources: list[dict[str, str]], t: LogSourceMap) -> list[Hit]:
    """A rule's hits; whole-channel / whole-product ones only if nothing more precise matched
    (an Elastic rule's "Data Source: Elastic Defend" tag beside its process index)."""
    hits = [hit for entry in log_sources for hit in _hits(entry, t)]
    return [hit for hit in hits if not hit.coarse] or hits


def unlinked_values(
    rules: Iterable[list[dict[str, str]]], table: LogSourceMap, key: str
) -> dict[str, int]:
    """Values of `key` that no entry of a rule links to anything, with the number of rules
    naming them, most named first: what the tables lack for this catalog."""
    counts: dict[str, int] = {}
    for log_sources in rules:
        linked: dict[str, bool] = {}
        for entry in log_sources:
            value = entry.get(key)
            if isinstance(value, str) and value.strip():
                found = bool(_hits(entry, table))
                linked[value.strip()] = linked.get(value.strip(), False) or found
        for value in (v for v, ok in linked.items() if not ok):
            counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


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
