"""Pure: what the object pages show (groups, software, campaigns, mitigations, data sources, data
components, detection strategies, analytics), built from rows the services already read.

Nothing here queries. Techniques are coloured as the matrix colours them (coverage score, or the
effective state in an environment), links stay inside kbmap with the page's release, and an
object without an ATT&CK id (a data component before 18) is addressed by its STIX id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from app.attack.service import Brief, Neighbour, ObjectRow
from app.catalog.service import RuleReading, RulesReading
from app.coverage.models import Gap, TechniqueCoverage
from app.environment.service import Collector
from app.layer.kinds.coverage import WHITE
from app.layer.kinds.effective import STATES as STATE_LEGEND
from app.web.views import PAGE_FOLDER, ink, query, score_fill, site_href

# kind → kbmap's page folder (the ATT&CK id prefix's folder in views.PAGE_FOLDER)
KIND_FOLDER = {
    "group": "groups",
    "software": "software",
    "campaign": "campaigns",
    "mitigation": "mitigations",
    "data_source": "data-sources",
    "data_component": "data-components",
    "detection_strategy": "detection-strategies",
    "analytic": "analytics",
}
assert set(KIND_FOLDER.values()) <= set(PAGE_FOLDER.values())
KIND_TITLE = {
    "group": "Group",
    "software": "Software",
    "campaign": "Campaign",
    "mitigation": "Mitigation",
    "data_source": "Data source",
    "data_component": "Data component",
    "detection_strategy": "Detection strategy",
    "analytic": "Analytic",
}
THREAT_KINDS = ("group", "software", "campaign")
RULES_SHOWN = 50  # per catalog: a data component like Process Creation is read by thousands
_QUERY_OF: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Release:
    domain: str
    version: str

    def href(self, path: str, **params: str | Sequence[str] | None) -> str:
        if not params:  # the common case, thousands of times on a data component's page
            key = (self.version, self.domain)
            if key not in _QUERY_OF:
                _QUERY_OF[key] = query(version=self.version, domain=self.domain)
            return f"{path}?{_QUERY_OF[key]}"
        q = query(version=self.version, domain=self.domain, **params)
        return f"{path}?{q}" if q else path


@dataclass(frozen=True)
class Link:
    """Another ATT&CK object, linked inside kbmap."""

    id: str | None
    name: str
    href: str | None
    note: str = ""


def object_link(b: Brief, release: Release, note: str = "") -> Link:
    """A link to the object's kbmap page: by ATT&CK id, else by STIX id in its kind's folder."""
    folder = "techniques" if b.kind == "technique" else KIND_FOLDER.get(b.kind)
    key = b.attack_id or b.stix_id
    href = release.href(f"/{folder}/{quote(key)}") if folder else None
    return Link(b.attack_id, b.name, href, note)


@dataclass(frozen=True)
class TechniqueLine:
    """A technique the object uses, mitigates or detects, coloured by your coverage of it."""

    link: Link
    text: str  # the relationship's own (technique-specific) text, ATT&CK markdown
    covered: bool
    label: str  # "score 40 · 3 rules", "not covered", "blind", …
    fill: str
    ink: str
    state: str | None
    via: list[Link] = field(default_factory=list)


def technique_line(
    link: Link, row: TechniqueCoverage | None, text: str = "", via: Sequence[Link] = ()
) -> TechniqueLine:
    """One technique, painted as the matrix paints it: by state in an environment, else score."""
    if row is None:  # outside the coverage rows (revoked or deprecated): no colour to give
        return TechniqueLine(link, text, False, "not scored", WHITE, "#000000", None, list(via))
    if row.state is not None:
        fill = STATE_LEGEND[row.state][0]
        label = f"{row.state.replace('_', ' ')} · {row.effective_rules or 0}/{row.rules} rules fire"
        covered = row.state == "effective"
    else:
        fill = score_fill(row.score)
        label = f"score {row.score:g} · {row.rules} rule{'s' if row.rules != 1 else ''}"
        covered = row.covered
        if not covered:
            label = "not covered"
    return TechniqueLine(link, text, covered, label, fill, ink(fill), row.state, list(via))


def technique_lines(
    uses: Iterable[tuple[Brief, str]],
    rows: Mapping[str, TechniqueCoverage],
    release: Release,
) -> list[TechniqueLine]:
    """(technique, text) pairs → lines by technique id; a technique twice keeps both texts."""
    texts: dict[str, list[str]] = defaultdict(list)
    briefs: dict[str, Brief] = {}
    for b, text in uses:
        key = b.attack_id or b.stix_id
        briefs[key] = b
        if text and text not in texts[key]:
            texts[key].append(text)
    return [
        technique_line(object_link(briefs[k], release), rows.get(k), "\n\n".join(texts.get(k, [])))
        for k in sorted(briefs)
    ]


def far_ends(
    near: Sequence[Neighbour], rtype: str, direction: str, kind: str
) -> list[tuple[Brief, str]]:
    """The far ends (with the relationship text) of one relationship type, direction and kind."""
    return [
        (n.far, n.description)
        for n in near
        if n.relationship_type == rtype and n.direction == direction and n.far.kind == kind
    ]


def links(pairs: Iterable[tuple[Brief, str]], release: Release) -> list[Link]:
    """Distinct objects as links, by ATT&CK id."""
    seen: dict[str, Brief] = {}
    for b, _ in pairs:
        seen.setdefault(b.attack_id or b.stix_id, b)
    return [object_link(b, release) for _, b in sorted(seen.items())]


@dataclass(frozen=True)
class RuleGroup:
    """One catalog's rules that read the object (the first RULES_SHOWN of them)."""

    catalog: str
    href: str
    rules: list[tuple[RuleReading, str]]  # rule, its page
    total: int


def rule_groups(found: RulesReading) -> list[RuleGroup]:
    """The rules by catalog, each linked to its page, with each catalog's total."""
    per: dict[str, list[tuple[RuleReading, str]]] = defaultdict(list)
    for r in found.rules:
        per[r.catalog].append(
            (r, f"/catalogs/{quote(r.catalog)}/rules/{quote(r.rule_id, safe='')}")
        )
    return [
        RuleGroup(cat, f"/catalogs/{quote(cat)}", per[cat], total)
        for cat, total in sorted(found.totals.items())
    ]


@dataclass(frozen=True)
class Collection:
    """Whether one environment collects the object's data components, and on which systems."""

    environment: str
    href: str
    collected: list[tuple[str, list[str]]]  # data component → systems (empty: not collected)

    @property
    def any(self) -> bool:
        return any(systems for _, systems in self.collected)


def collections(found: Sequence[Collector]) -> list[Collection]:
    return [
        Collection(
            c.environment, f"/environments/{quote(c.environment)}", sorted(c.systems.items())
        )
        for c in found
    ]


@dataclass(frozen=True)
class LogSourceLine:
    """A log source ATT&CK names (analytic or 18+ data component), with its data component."""

    component: Link | None
    name: str
    channel: str


def log_source_lines(
    entries: Iterable[Mapping[str, Any]], components: Mapping[str, Brief], release: Release
) -> list[LogSourceLine]:
    """An analytic's `log_source_references` or a data component's `log_sources`."""
    out = []
    for e in entries:
        dc = components.get(str(e.get("x_mitre_data_component_ref") or e.get("data_component_ref")))
        out.append(
            LogSourceLine(
                object_link(dc, release) if dc else None,
                str(e.get("name") or ""),
                str(e.get("channel") or ""),
            )
        )
    return out


@dataclass
class ObjectPage:
    """Everything one object page shows; sections a kind lacks stay empty."""

    kind: str
    release: Release
    id: str | None
    stix_id: str
    name: str
    description: str
    site_url: str | None
    revoked: bool
    deprecated: bool
    aliases: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)  # label → plain value
    techniques: list[TechniqueLine] = field(default_factory=list)
    techniques_title: str = "Techniques"
    via_campaigns: list[TechniqueLine] = field(default_factory=list)
    related: list[tuple[str, list[Link]]] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    gaps_total: int = 0
    gaps_href: str | None = None
    layer_href: str | None = None
    log_sources: list[LogSourceLine] = field(default_factory=list)
    analytics: list[AnalyticBlock] = field(default_factory=list)
    rules: list[RuleGroup] | None = None  # None: the kind is not read by rules
    collections: list[Collection] | None = None
    components: list[str] = field(default_factory=list)  # data component names it rests on

    @property
    def title(self) -> str:
        return KIND_TITLE[self.kind]

    @property
    def key(self) -> str:
        return self.id or self.stix_id

    @property
    def uncovered(self) -> list[TechniqueLine]:
        """The techniques listed that you cannot detect (not covered, or not effective)."""
        return [t for t in self.techniques if not t.covered]


@dataclass(frozen=True)
class AnalyticBlock:
    """One analytic of a detection strategy: what it looks for and in which log sources."""

    link: Link
    platforms: list[str]
    description: str
    log_sources: list[LogSourceLine]


def base_page(obj: ObjectRow, release: Release) -> ObjectPage:
    """The header every object page shares: names, aliases, platforms, the ATT&CK site link."""
    data = obj.data  # groups' `aliases` and software's `x_mitre_aliases` both land in `aliases`
    aliases = [str(a) for a in data.get("aliases") or () if str(a) != obj.name]
    return ObjectPage(
        kind=obj.kind,
        release=release,
        id=obj.attack_id,
        stix_id=obj.stix_id,
        name=obj.name,
        description=obj.description,
        site_url=site_href(obj.attack_id) or obj.url,
        revoked=obj.revoked,
        deprecated=obj.deprecated,
        aliases=list(dict.fromkeys(a for a in aliases if a != obj.name)),
        platforms=list(obj.platforms),
        facts=_facts(data),
    )


# STIX extras worth a line in the header (stored without the `x_mitre_` prefix)
_FACTS = (
    ("software_type", "Type"),
    ("first_seen", "First seen"),
    ("last_seen", "Last seen"),
    ("version", "ATT&CK object version"),
)


def _facts(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(label, str(data[key])) for key, label in _FACTS if data.get(key)]


def gap_links(release: Release, threat_id: str, catalogs: Sequence[str]) -> tuple[str, str]:
    """The gap page and the threat layer of one group, software or campaign."""
    gaps = release.href("/gaps", groups=threat_id, catalog=catalogs)
    layer = release.href("/api/v1/layers/threat", groups=threat_id)
    return gaps, layer
