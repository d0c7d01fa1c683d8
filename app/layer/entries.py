"""Pure: what every layer kind builds with — the context a layer states, technique links, rule
notes, and `finish`, which adds what every layer shares (versions, filters, metadata) and opens
parents whose sub-techniques carry annotations.

Nothing here queries; the kinds (`app.layer.kinds`) hand over rows their `gather` fetched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol
from urllib.parse import quote

from app.catalog.base import clean_text
from app.coverage.models import TechniqueCoverage
from app.layer.navigator import (
    Divider,
    Filters,
    Gradient,
    Layer,
    LegendItem,
    Link,
    MetadataItem,
    Technique,
    Versions,
)

MAX_RULE_METADATA = 12  # rules listed in an entry's metadata; the rest are counted
MAX_RULE_LINKS = 6
MAX_LAYER_TEXT = 1_000  # characters of stored rule text in one metadata item
MAX_LINK_URL = 2_000  # what a layer's link holds (navigator.Url)


@dataclass(frozen=True)
class LayerContext:
    """What every layer states about itself: release, catalogs, filters, where links point."""

    kind: str
    domain: str  # enterprise | mobile | ics
    version: str  # "18.1"
    platforms: list[str]  # the release's own spelling: the request's, else all of the release's
    platform_filtered: bool = False
    catalogs: list[str] = field(default_factory=list)
    tactics: list[str] = field(default_factory=list)
    threat: list[str] = field(default_factory=list)
    base_url: str = "http://127.0.0.1:8000"
    environment: str | None = None  # the environment whose telemetry the layer judges by

    @property
    def release(self) -> str:
        return f"ATT&CK {self.domain} {self.version}"

    @property
    def in_environment(self) -> str:
        """` in environment X` when the layer has one, else nothing: descriptions end with it."""
        return f" in environment {self.environment}" if self.environment else ""


# ---- rule notes: the covering rules of a technique, made once per catalog import ---------------


class RuleNotes(NamedTuple):
    """Metadata and links naming a technique's covering rules: made once per catalog import and
    shared by every coverage layer after that (the models are never mutated)."""

    metadata: tuple[MetadataItem, ...]
    links: tuple[Link | Divider, ...]


class RuleLine(NamedTuple):
    """A covering rule as a layer names it (a plain tuple: cheap to cache by the thousand)."""

    catalog: str
    rule_id: str
    title: str
    enabled: bool


def rule_notes(found: Sequence[RuleLine], *, base_url: str) -> RuleNotes:
    """Up to MAX_RULE_METADATA rules in metadata (the rest counted), MAX_RULE_LINKS as links."""
    return RuleNotes(tuple(_rule_metadata(found)), tuple(_rule_links(base_url, found)))


def _stored(value: str) -> str:
    """Rule text as a layer may carry it. Imports cap and clean ids and titles, but a catalog
    imported before they did can hold control characters or run long: clean, never fail a layer
    that every reader shares."""
    return clean_text(value, MAX_LAYER_TEXT)[0]


def _rule_metadata(found: Sequence[RuleLine]) -> list[MetadataItem]:
    out = [
        MetadataItem(
            name=_stored(f"{x.catalog} {x.rule_id}"),
            value=_stored(x.title + ("" if x.enabled else " (disabled)")),
        )
        for x in found[:MAX_RULE_METADATA]
    ]
    if len(found) > MAX_RULE_METADATA:
        more = len(found) - MAX_RULE_METADATA
        out.append(MetadataItem(name="more rules", value=f"{more} more on the kbmap page"))
    return out


def _rule_links(base_url: str, found: Sequence[RuleLine]) -> list[Link | Divider]:
    urls = (
        (x, f"{base_url}/catalogs/{quote(x.catalog, safe='')}/rules/{quote(x.rule_id, safe='')}")
        for x in found[:MAX_RULE_LINKS]
    )
    links: list[Link | Divider] = [
        Link(label=_stored(f"rule {x.catalog} {x.rule_id}"), url=url)
        for x, url in urls
        if len(url) <= MAX_LINK_URL  # an id stored before the caps: its metadata still names it
    ]
    return [*links, Divider(divider=True)] if links else []


# ---- entries ------------------------------------------------------------------------------------

KBMAP_LINK = "kbmap"  # the label's first word of a technique's link to its kbmap page


def technique_links(ctx: LayerContext, tid: str) -> list[Link | Divider]:
    """kbmap's page of the technique, with its rules, for the layer's release (first: the SVG
    links its tiles to it), then ATT&CK's page."""
    path = tid.replace(".", "/")
    return [
        Link(
            label=f"{KBMAP_LINK} {tid} with rules",
            url=f"{ctx.base_url}/techniques/{tid}?version={ctx.version}&domain={ctx.domain}",
        ),
        Link(label=f"ATT&CK {tid}", url=f"https://attack.mitre.org/techniques/{path}/"),
    ]


def tactic_scores(r: TechniqueCoverage) -> list[tuple[str | None, float]]:
    """(tactic, score) per entry: one per tactic where pinned scores differ, else one (None)."""
    if r.tactic_scores:
        return [(t, r.tactic_scores.get(t, 0.0)) for t in r.tactics]
    return [(None, r.score)]


def metadata(pairs: Sequence[tuple[str, str]]) -> list[MetadataItem]:
    """Name/value pairs as metadata, empty values left out (Navigator shows "" as a blank row)."""
    return [MetadataItem(name=k, value=v) for k, v in pairs if v]


def catalogs_named(ctx: LayerContext) -> str:
    return ", ".join(ctx.catalogs) or "no catalog"


class TechniqueState(Protocol):
    """A technique of one release as the diff layer and the matrix read it; the attack service's
    release views and technique index both satisfy it."""

    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def tactics(self) -> tuple[str, ...]: ...
    @property
    def platforms(self) -> tuple[str, ...]: ...


def in_scope(
    techniques: Mapping[str, TechniqueState], *, platforms: Sequence[str], tactics: Sequence[str]
) -> set[str]:
    """Active technique ids matching the platform and tactic filters (case-insensitive)."""
    plats = {p.lower() for p in platforms}
    tacs = set(tactics)
    return {
        tid
        for tid, t in techniques.items()
        if t.status == "active"
        and (not plats or plats & {p.lower() for p in t.platforms})
        and (not tacs or tacs & set(t.tactics))
    }


# ---- the layer ----------------------------------------------------------------------------------


def finish(
    ctx: LayerContext,
    entries: list[Technique],
    *,
    name: str,
    description: str,
    legend: Sequence[tuple[str, str]],
    gradient: Gradient | None = None,
    sorting: int = 0,
    extra: Sequence[tuple[str, str]] = (),
    with_catalogs: bool = True,
) -> Layer:
    """The layer around a kind's entries: name, versions, filters, legend, shared metadata."""
    meta = [
        ("release", ctx.release),
        ("catalogs", ", ".join(ctx.catalogs) if with_catalogs else ""),
        ("platforms", ", ".join(ctx.platforms) if ctx.platform_filtered else ""),
        ("tactics", ", ".join(ctx.tactics)),
        ("threat", ", ".join(ctx.threat)),
        ("environment", ctx.environment or ""),
        *extra,
        ("generated by", "kbmap"),
    ]
    return Layer(
        name=f"kbmap {name} · {ctx.domain} {ctx.version}",
        versions=Versions(attack=ctx.version.split(".")[0]),
        domain=f"{ctx.domain}-attack",  # checked by the model
        description=description,
        filters=Filters(platforms=ctx.platforms) if ctx.platforms else None,
        sorting=sorting,
        techniques=show_parents(entries),
        gradient=gradient,
        legendItems=[LegendItem(label=k, color=v) for k, v in legend],
        metadata=metadata(meta),
    )


def show_parents(entries: list[Technique]) -> list[Technique]:
    """Parents of annotated sub-techniques open by default (`showSubtechniques`).

    A parent without an entry of its own gets a bare one that says only that; it annotates
    nothing, so importing the layer back does not count it as covered.
    """
    parents = {
        e.techniqueID.split(".")[0]
        for e in entries
        if "." in e.techniqueID and e.is_enabled and e.annotated
    }
    present = {e.techniqueID for e in entries}
    for e in entries:
        if e.techniqueID in parents:
            e.showSubtechniques = True
    entries = entries + [
        Technique(techniqueID=p, showSubtechniques=True) for p in parents - present
    ]
    return sorted(entries, key=lambda e: (e.techniqueID, e.tactic or ""))
