"""Pure: coverage, gap, threat, telemetry, comparison and release-diff results → Navigator layers.

Nothing here queries: the service hands over rows it already computed (the same rows the coverage
API serves), so a layer can never disagree with `/coverage/...`. Each builder states its colours
and legend once; `_finish` adds what every layer shares (versions, filters, metadata) and opens
parents whose sub-techniques carry annotations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol
from urllib.parse import quote

from app.attack.models import ReleaseChanges, TechniqueChanges
from app.catalog.base import clean_text
from app.coverage.models import CatalogComparison, Gap, TechniqueCoverage
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
MAX_LISTED = 12  # groups, data components... named in one metadata value

COVERAGE_GRADIENT = ["#fdd49e", "#c2e699", "#31a354"]  # weak → strong; uncovered = no entry
GAP_GRADIENT = ["#fff7bc", "#fe9929", "#cc4c02"]  # low → high priority
WHITE = "#ffffff"
COVERED, UNCOVERED, UNUSED = "#31a354", "#e6550d", "#d9d9d9"
TELEMETRY = {
    "covered": ("#31a354", "covered by rules, telemetry collected"),
    "covered-blind": ("#a1d99b", "covered by rules, but no collected data component sees it"),
    "cheap": ("#fdae6b", "not covered, telemetry collected: a rule is all that is missing"),
    "blind": ("#de2d26", "not covered, no collected data component sees it"),
}
COMPARE = {
    "both": "#31a354",
    "only_a": "#3182bd",
    "only_b": "#fd8d3c",
    "neither": "#d9d9d9",
}
DIFF = {
    "added": ("#31a354", "new in this release"),
    "reinstated": ("#74c476", "active again: deprecated or revoked in the older release"),
    "replaces": ("#9e9ac8", "replaces a technique revoked in this release"),
    "changed": ("#fdae6b", "changed: name, tactics, platforms or description"),
}


class RuleNotes(NamedTuple):
    """Metadata and links naming a technique's covering rules: made once per catalog import and
    shared by every coverage layer after that (the models are never mutated)."""

    metadata: tuple[MetadataItem, ...]
    links: tuple[Link | Divider, ...]


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

    @property
    def release(self) -> str:
        return f"ATT&CK {self.domain} {self.version}"


class RuleLine(NamedTuple):
    """A covering rule as a layer names it (a plain tuple: cheap to cache by the thousand)."""

    catalog: str
    rule_id: str
    title: str
    enabled: bool


# ---- coverage ---------------------------------------------------------------------------------


def coverage_layer(
    ctx: LayerContext,
    rows: Sequence[TechniqueCoverage],
    notes: Mapping[str, RuleNotes],
    *,
    min_score: float = 0.0,
) -> Layer:
    """One entry per covered (technique, tactic); per tactic only where pinned scores differ."""
    entries = []
    none = RuleNotes((), ())
    for r in rows:
        found = notes.get(r.id, none)
        for tactic, s in _tactic_scores(r):
            if s <= 0 or s < min_score:
                continue
            where = f" under {tactic}" if tactic else ""
            cats = ", ".join(r.catalogs) or "no enabled rule"
            entries.append(
                Technique(
                    techniqueID=r.id,
                    tactic=tactic,
                    score=s,
                    comment=f"{r.name}: score {s:g}{where} from {r.rules} rule(s) in {cats}",
                    metadata=[
                        MetadataItem(name="score", value=f"{s:g}"),
                        MetadataItem(name="rules", value=str(r.rules)),
                        *found.metadata,
                    ],
                    links=[*found.links, *_technique_links(ctx, r.id)],
                )
            )
    return _finish(
        ctx,
        entries,
        name="coverage",
        description=f"Detection coverage of {ctx.release} by {_catalogs(ctx)}; "
        "score 0-100 from rule status and severity, uncovered techniques have no entry",
        gradient=Gradient(colors=COVERAGE_GRADIENT, minValue=0, maxValue=100),
        legend=[
            ("not covered", WHITE),
            ("weakly covered (low score)", COVERAGE_GRADIENT[0]),
            ("well covered (score 100)", COVERAGE_GRADIENT[-1]),
        ],
    )


def _tactic_scores(r: TechniqueCoverage) -> list[tuple[str | None, float]]:
    if r.tactic_scores:
        return [(t, r.tactic_scores.get(t, 0.0)) for t in r.tactics]
    return [(None, r.score)]


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
        (x, f"{base_url}/api/v1/rules/{quote(x.catalog, safe='')}/{quote(x.rule_id, safe='')}")
        for x in found[:MAX_RULE_LINKS]
    )
    links: list[Link | Divider] = [
        Link(label=_stored(f"rule {x.catalog} {x.rule_id}"), url=url)
        for x, url in urls
        if len(url) <= MAX_LINK_URL  # an id stored before the caps: its metadata still names it
    ]
    return [*links, Divider(divider=True)] if links else []


def _technique_links(ctx: LayerContext, tid: str) -> list[Link | Divider]:
    path = tid.replace(".", "/")
    return [
        Link(label=f"ATT&CK {tid}", url=f"https://attack.mitre.org/techniques/{path}/"),
        Link(
            label=f"kbmap {tid} with rules",
            url=f"{ctx.base_url}/api/v1/techniques/{tid}?domain={ctx.domain}&version={ctx.version}",
        ),
    ]


# ---- gaps -------------------------------------------------------------------------------------


def gaps_layer(ctx: LayerContext, gaps: Sequence[Gap], *, min_score: float = 0.0) -> Layer:
    """Every uncovered or weak technique gets an entry scored by its gap priority."""
    top = max((g.priority for g in gaps), default=0.0)
    entries = []
    for g in gaps:
        p = g.parts
        state = "uncovered" if g.score <= 0 else f"weak (score {g.score:g} < {min_score:g})"
        meta = [
            ("priority", f"{g.priority:g}"),
            ("coverage score", f"{g.score:g}"),
            ("threat uses", f"{p.threat_uses} (+{p.threat:g})"),
            ("platform span", f"{p.platform_span} (+{p.platforms:g})"),
            ("telemetry", f"{p.telemetry} (+{p.telemetry_bonus:g})"),
            ("weakness", f"×{p.weakness:g}"),
            ("groups", _listed(g.groups)),
            ("software", _listed(g.software)),
            ("campaigns", _listed(g.campaigns)),
            ("collected data components", _listed(g.collected_data_components)),
            ("data components", _listed(g.data_components)),
            ("detection strategies", _listed(g.detection_strategies)),
        ]
        entries.append(
            Technique(
                techniqueID=g.id,
                score=g.priority,
                comment=f"{g.name}: {state}, priority {g.priority:g} "
                f"(used by {p.threat_uses}, {p.platform_span} platform(s), "
                f"telemetry {p.telemetry})",
                metadata=[MetadataItem(name=k, value=v) for k, v in meta if v],
                links=_technique_links(ctx, g.id),
            )
        )
    hi = max(1, math.ceil(top))
    return _finish(
        ctx,
        entries,
        name="gaps",
        description=f"Uncovered and weak techniques of {ctx.release} against {_catalogs(ctx)}; "
        "score = gap priority (threat use, platform span, telemetry, weakness)",
        gradient=Gradient(colors=GAP_GRADIENT, minValue=0, maxValue=hi),
        legend=[("low priority gap", GAP_GRADIENT[0]), ("high priority gap", GAP_GRADIENT[-1])],
        sorting=3,
    )


def _listed(values: Sequence[str]) -> str:
    shown = ", ".join(values[:MAX_LISTED])
    return f"{shown} and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else shown


# ---- threat -----------------------------------------------------------------------------------


def threat_layer(
    ctx: LayerContext,
    used: Sequence[TechniqueCoverage],
    others: Iterable[str],
    users: Mapping[str, Sequence[tuple[str, str]]],
    *,
    min_score: float = 0.0,
) -> Layer:
    """Techniques the threat uses, covered or not; every other technique in scope is disabled.

    `users` maps technique → (id, name) of the chosen groups/software/campaigns that use it.
    """
    entries = []
    for r in used:
        who = users.get(r.id, ())
        names = ", ".join(f"{i} {n}" for i, n in who) or ", ".join(ctx.threat)
        for tactic, s in _tactic_scores(r):
            ok = s > 0 and s >= min_score
            entries.append(
                Technique(
                    techniqueID=r.id,
                    tactic=tactic,
                    color=COVERED if ok else UNCOVERED,
                    comment=f"{r.name}: used by {names}; "
                    + (f"covered (score {s:g})" if ok else "not covered"),
                    metadata=[
                        MetadataItem(name="coverage score", value=f"{s:g}"),
                        *(MetadataItem(name=f"used by {i}", value=n) for i, n in who),
                    ],
                    links=_technique_links(ctx, r.id),
                )
            )
    entries += [Technique(techniqueID=t, enabled=False) for t in sorted(set(others))]
    return _finish(
        ctx,
        entries,
        name=f"threat {' '.join(ctx.threat)}",
        description=f"Techniques {', '.join(ctx.threat)} use in {ctx.release}, covered or not by "
        f"{_catalogs(ctx)}; techniques they are not known to use are disabled",
        legend=[
            ("used, covered", COVERED),
            ("used, not covered", UNCOVERED),
            ("not used (disabled)", UNUSED),
        ],
    )


# ---- telemetry --------------------------------------------------------------------------------


def telemetry_layer(
    ctx: LayerContext,
    rows: Sequence[TechniqueCoverage],
    data_components: Mapping[str, Iterable[str]],
    collected: Iterable[str],
    *,
    min_score: float = 0.0,
) -> Layer:
    """Each technique in one of four states: rules × whether collected telemetry can see it."""
    have = {c.lower() for c in collected}
    entries = []
    for r in rows:
        dcs = sorted(data_components.get(r.id, ()))
        seen = [d for d in dcs if d.lower() in have]
        for tactic, s in _tactic_scores(r):
            covered = s > 0 and s >= min_score
            state = (
                ("covered" if seen else "covered-blind")
                if covered
                else ("cheap" if seen else "blind")
            )
            color, label = TELEMETRY[state]
            meta = [
                ("coverage score", f"{s:g}"),
                ("collected data components", _listed(seen)),
                ("data components", _listed(dcs)),
            ]
            entries.append(
                Technique(
                    techniqueID=r.id,
                    tactic=tactic,
                    color=color,
                    comment=f"{r.name}: {label}",
                    metadata=[MetadataItem(name=k, value=v) for k, v in meta if v],
                    links=_technique_links(ctx, r.id),
                )
            )
    return _finish(
        ctx,
        entries,
        name="telemetry",
        description=f"Rules ({_catalogs(ctx)}) against collected telemetry "
        f"({', '.join(sorted(have))}) in {ctx.release}",
        legend=[(label, color) for color, label in TELEMETRY.values()],
    )


# ---- compare ----------------------------------------------------------------------------------


def compare_layer(ctx: LayerContext, cmp: CatalogComparison, names: Mapping[str, str]) -> Layer:
    """Every technique in scope coloured by which side covers it."""
    a, b = ", ".join(cmp.a), ", ".join(cmp.b)
    labels = {
        "both": f"covered by both ({a}; {b})",
        "only_a": f"only A: {a}",
        "only_b": f"only B: {b}",
        "neither": "covered by neither",
    }
    groups = {"both": cmp.both, "only_a": cmp.only_a, "only_b": cmp.only_b, "neither": cmp.neither}
    entries = [
        Technique(
            techniqueID=tid,
            color=COMPARE[key],
            comment=f"{names.get(tid, tid)}: {labels[key]}",
            links=_technique_links(ctx, tid),
        )
        for key, ids in groups.items()
        for tid in ids
    ]
    return _finish(
        ctx,
        entries,
        name=f"compare {a} vs {b}",
        description=f"Coverage of {ctx.release}: A = {a}, B = {b}",
        legend=[(labels[k], COMPARE[k]) for k in groups],
        extra=[("A", a), ("B", b)],
    )


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


def diff_layer(
    ctx: LayerContext,
    diff: ReleaseChanges,
    old: Mapping[str, TechniqueState],
    new: Mapping[str, TechniqueState],
    *,
    in_scope: set[str],
) -> Layer:
    """Entries on the newer release only (added, changed, replacing a technique revoked in it);
    revoked and deprecated ids are named in metadata. `old` and `new` are the techniques the diff
    compared, for names and the tactic and platform lists a change shows."""
    t = diff.techniques
    added = [r.id for r in t.added if r.id]
    reinstated = [r.id for r in t.reinstated if r.id]
    replaced: dict[str, list[str]] = {}
    for r in t.revoked:
        if r.replacement and r.id:
            replaced.setdefault(r.replacement, []).append(r.id)
    changed = _changes(t, old, new)
    entries = []
    for tid in sorted((set(added) | set(reinstated) | set(changed) | set(replaced)) & in_scope):
        kinds = [
            k
            for k, s in (("added", added), ("reinstated", reinstated), ("replaces", replaced))
            if tid in s
        ]
        kinds += ["changed"] if tid in changed else []
        color, _label = DIFF[kinds[0]]
        notes = []
        if tid in added:
            notes.append(f"new since {diff.from_version}")
        if tid in reinstated:
            notes.append(f"active again (not active in {diff.from_version})")
        if tid in replaced:
            notes.append(f"replaces {', '.join(replaced[tid])} (revoked)")
        meta = [MetadataItem(name="change", value=c) for c in changed.get(tid, ())]
        meta += [MetadataItem(name="replaces", value=r) for r in replaced.get(tid, ())]
        entries.append(
            Technique(
                techniqueID=tid,
                color=color,
                comment=f"{new[tid].name}: {'; '.join(notes) or 'changed'}",
                metadata=meta or None,
                links=_technique_links(ctx, tid),
            )
        )
    return _finish(
        ctx,
        entries,
        name=f"diff {diff.from_version} → {ctx.version}",
        description=(
            f"What changed in ATT&CK {ctx.domain} from {diff.from_version} to {ctx.version}"
        ),
        legend=[(label, color) for color, label in DIFF.values()],
        extra=[
            ("from", f"ATT&CK {ctx.domain} {diff.from_version}"),
            ("added", str(len(added))),
            ("reinstated", _listed(reinstated)),
            ("changed", str(len(changed))),
            ("revoked", _listed([r.id for r in t.revoked if r.id])),
            ("deprecated", _listed([r.id for r in t.deprecated if r.id])),
        ],
        with_catalogs=False,
    )


def _changes(
    t: TechniqueChanges, old: Mapping[str, TechniqueState], new: Mapping[str, TechniqueState]
) -> dict[str, list[str]]:
    """Technique id → "what: before → after" lines, in the legend's order: name, tactics,
    platforms, description (the diff reports these for techniques active in both releases)."""
    out: dict[str, list[str]] = {}
    for r in t.renamed:
        out.setdefault(r.id, []).append(f"name: {r.old_name} → {r.new_name}")
    for c in t.tactics_changed:
        tid = c.id or ""
        was, now = ", ".join(old[tid].tactics), ", ".join(new[tid].tactics)
        out.setdefault(tid, []).append(f"tactics: {was} → {now}")
    for c in t.platforms_changed:
        tid = c.id or ""
        was, now = ", ".join(old[tid].platforms), ", ".join(new[tid].platforms)
        out.setdefault(tid, []).append(f"platforms: {was} → {now}")
    for d in t.description_changed:
        out.setdefault(d.id or "", []).append("description")
    return {tid: out[tid] for tid in sorted(out)}


# ---- shared -----------------------------------------------------------------------------------


def _catalogs(ctx: LayerContext) -> str:
    return ", ".join(ctx.catalogs) or "no catalog"


def _finish(
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
    meta = [
        ("release", ctx.release),
        ("catalogs", ", ".join(ctx.catalogs) if with_catalogs else ""),
        ("platforms", ", ".join(ctx.platforms) if ctx.platform_filtered else ""),
        ("tactics", ", ".join(ctx.tactics)),
        ("threat", ", ".join(ctx.threat)),
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
        metadata=[MetadataItem(name=k, value=v) for k, v in meta if v],
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
