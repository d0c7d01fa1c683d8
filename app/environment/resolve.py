"""Pure: a parsed environment placed in one release: platforms, log sources → data components.

A data component is named by name (any case) or id. A log source is read the way a rule's is:
a mapping through the catalog's log-source tables (the same code links rules), a string first as
ATT&CK writes an analytic's log source ("WinEventLog:Security EventCode=4624", matched against
the release's own analytics and data components), then as free text. What places nowhere, a
platform the release does not know, a technique id it does not have: reported, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from app.environment.models import (
    ALL_SYSTEMS,
    QUALITY_DIMENSIONS,
    EnvironmentReport,
    ParsedEnvironment,
    ParsedLogSource,
    Unplaced,
)

Key = tuple[str, str]  # lower-cased (log source name, channel), one event per key
_DETTECT_OWN = "[dett&ct data source]"


@dataclass(frozen=True)
class ReleaseWords:
    """What placing needs of one release (built by the import from the attack service)."""

    label: str  # "enterprise 18.1", for reasons
    components: dict[str, str]  # lower-cased name and id → name as the release spells it
    platforms: dict[str, str]  # lower-cased platform → as spelled
    log_sources: dict[Key, frozenset[str]]  # ATT&CK's own (name, channel) → data components
    techniques: frozenset[str]  # technique ids of the release


@dataclass(frozen=True)
class Placer:
    """The release's words and the tables a rule's log sources are read with."""

    words: ReleaseWords
    # a rule log-source entry → data components (the catalog's `data_components_for`)
    rule_components: Callable[[dict[str, str]], list[str]]
    # (ATT&CK name, channel) → its keys (the catalog's `analytic_ref_keys`)
    ref_keys: Callable[[str, str], set[tuple[str, str]]]


@dataclass
class SourceRow:
    """One log source on one system, as stored."""

    system: int  # index into `Resolved.systems`
    kind: str
    written: str
    value: str | dict[str, str]
    data_components: list[str]
    since: str | None
    products: list[str]
    quality: dict[str, int] | None
    counted: bool
    comment: str


@dataclass
class Resolved:
    systems: list[tuple[str, list[str], list[str]]]  # (name, ATT&CK platforms, as written)
    sources: list[SourceRow] = field(default_factory=list)
    report: EnvironmentReport | None = None


def written_form(value: str | dict[str, str]) -> str:
    """How a log source is shown: the string, or `key=value; ...` for a mapping."""
    if isinstance(value, str):
        return value
    return "; ".join(f"{k}={v}" for k, v in value.items())


def quality_factor(quality: dict[str, int] | None) -> float:
    """Mean of the given data-quality dimensions (0-5) over 5; 1 when none is given."""
    values = [quality[d] for d in QUALITY_DIMENSIONS if quality and d in quality]
    return round(sum(values) / len(values) / 5, 4) if values else 1.0


def resolve(parsed: ParsedEnvironment, placer: Placer) -> Resolved:
    """Place every system and log source in the release; the report says what did not place."""
    words = placer.words
    systems, unknown_platforms = _systems(parsed, words)
    out = Resolved(systems=systems)
    index = {name: i for i, (name, _p, _w) in enumerate(systems)}
    unplaced: list[Unplaced] = []
    not_counted: list[Unplaced] = []
    for src in parsed.log_sources:
        targets = (
            list(range(len(systems)))
            if ALL_SYSTEMS in src.systems
            else [index[s] for s in src.systems if s in index]
        )
        comps, reason = _components(src, placer)
        written = written_form(src.value)
        names = [systems[i][0] for i in targets]
        if not comps:
            unplaced.append(Unplaced(written=written, systems=names, reason=reason))
        counted = bool(comps) and _counts(src)
        if comps and not counted:
            not_counted.append(Unplaced(written=written, systems=names, reason=_why_not(src)))
        out.sources += [_row(i, src, written, comps, counted) for i in targets]
    out.report = _report(parsed, out, unplaced, not_counted, unknown_platforms, words)
    return out


def _systems(
    parsed: ParsedEnvironment, words: ReleaseWords
) -> tuple[list[tuple[str, list[str], list[str]]], list[Unplaced]]:
    """Each system's platforms as the release spells them; `all` is every platform."""
    out, unknown = [], []
    for s in parsed.systems:
        plats: list[str] = []
        for p in s.platforms:
            low = p.strip().lower()
            if low == ALL_SYSTEMS:
                plats += sorted(words.platforms.values(), key=str.lower)
            elif low in words.platforms:
                plats.append(words.platforms[low])
            else:
                known = ", ".join(sorted(words.platforms.values(), key=str.lower))
                reason = f"not a platform of ATT&CK {words.label} (known: {known})"
                unknown.append(Unplaced(written=p, systems=[s.name], reason=reason))
        out.append((s.name, list(dict.fromkeys(plats)), list(s.platforms)))
    return out, unknown


def _components(src: ParsedLogSource, placer: Placer) -> tuple[list[str], str]:
    """(data components, why none) for one log source."""
    words = placer.words
    if src.kind == "data_component":
        name = words.components.get(str(src.value).strip().lower())
        return ([name], "") if name else ([], _unknown_component(str(src.value), words))
    found = _attack_spelling(src.value, placer) if isinstance(src.value, str) else []
    if not found:
        entry = {"text": src.value} if isinstance(src.value, str) else src.value
        found = placer.rule_components(entry)
    known = [words.components[c.lower()] for c in found if c.lower() in words.components]
    if known:
        return list(dict.fromkeys(known)), ""
    if found:
        return [], f"provides {', '.join(found)}, not data components of ATT&CK {words.label}"
    return [], "kbmap's log-source tables and ATT&CK's analytics do not name this log source"


def _unknown_component(value: str, words: ReleaseWords) -> str:
    if value.strip().lower().endswith(_DETTECT_OWN):
        return f"a DeTT&CT data source, not an ATT&CK data component of {words.label}"
    return f"not a data component of ATT&CK {words.label}"


def _attack_spelling(value: str, placer: Placer) -> list[str]:
    """`WinEventLog:Security EventCode=4624`: ATT&CK's (name, channel) read off the release."""
    name, _, channel = value.strip().partition(" ")
    if not channel.strip():
        return []
    keys = placer.ref_keys(name, channel.strip())
    found: dict[str, None] = {}
    for k in keys:
        found |= dict.fromkeys(placer.words.log_sources.get((k[0].lower(), k[1].lower()), ()))
    return sorted(found)


def _counts(src: ParsedLogSource) -> bool:
    """Collected for analytics and of some quality: DeTT&CT's own reading of a data source."""
    return src.available and not (src.quality and not any(src.quality.values()))


def _why_not(src: ParsedLogSource) -> str:
    if not src.available:
        return "marked not available for data analytics"
    return "every data-quality dimension is 0"


def _row(
    system: int, src: ParsedLogSource, written: str, comps: list[str], counted: bool
) -> SourceRow:
    return SourceRow(
        system=system,
        kind=src.kind,
        written=written,
        value=src.value,
        data_components=comps,
        since=src.since,
        products=list(src.products),
        quality=dict(src.quality) if src.quality is not None else None,
        counted=counted,
        comment=src.comment,
    )


def _report(
    parsed: ParsedEnvironment,
    out: Resolved,
    unplaced: list[Unplaced],
    not_counted: list[Unplaced],
    unknown_platforms: list[Unplaced],
    words: ReleaseWords,
) -> EnvironmentReport:
    exceptions = list(dict.fromkeys(t.strip().upper() for t in parsed.exceptions))
    return EnvironmentReport(
        format=parsed.format_id,
        systems=len(out.systems),
        log_sources=len(out.sources),
        placed=sum(1 for s in out.sources if s.data_components),
        data_components=len(_distinct(s.data_components for s in out.sources if s.counted)),
        unplaced=unplaced,
        not_counted=not_counted,
        unknown_platforms=unknown_platforms,
        exceptions=[t for t in exceptions if t in words.techniques],
        unknown_exceptions=[t for t in exceptions if t not in words.techniques],
        warnings=[str(i) for i in parsed.issues],
    )


def _distinct(lists: Iterable[list[str]]) -> set[str]:
    return {x for xs in lists for x in xs}
