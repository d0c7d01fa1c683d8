"""Pure: a release diff (`refresh.impact.release_diff`) → what the diff page shows.

Nothing here queries. Each list of the diff becomes a section of rows whose ids link to kbmap's
pages in the release where the object lives: what the `to` release added, renamed or moved links
there; what it revoked, deprecated or removed links to the `from` release, where it was still
active. Catalog impact rows link to the rule page and to the replacement technique.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from app.attack.models import ObjectRef, RevokedTechnique, SubtechniqueChange
from app.refresh.models import CatalogImpact, ReleaseDiff, StaleMapping

# the diff's object kinds, as the page names them
KIND_NAMES = {
    "mitigation": "Mitigations",
    "data_source": "Data sources",
    "data_component": "Data components",
    "detection_strategy": "Detection strategies",
    "analytic": "Analytics",
}


@dataclass(frozen=True)
class Row:
    """One entry: an id (linked in `version`), a name, and what changed, in words."""

    id: str | None
    name: str
    version: str
    note: str = ""
    note_id: str | None = None  # a second id the note names (a replacement, a new parent),
    note_name: str = ""  # shown after the note as a link in `to`


@dataclass(frozen=True)
class Section:
    key: str  # the html id, and the name of the count in `ReleaseDiff.counts` where there is one
    title: str
    rows: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class ImpactRow:
    """A stale mapping of one rule: the rule, the id it names, and what that id becomes."""

    rule_id: str
    rule_name: str
    rule_href: str
    written: str
    stale_id: str
    status: str
    suggested: str | None
    chain: str
    new_here: bool
    already_resolved: bool


def rule_href(catalog: str, rule_id: str) -> str:
    """kbmap's page of one rule (rule ids may hold anything: both parts are quoted)."""
    return f"/catalogs/{quote(catalog, safe='')}/rules/{quote(rule_id, safe='')}"


def technique_sections(d: ReleaseDiff) -> list[Section]:
    """The technique lists of the diff, in the order a reader triages them."""
    t, old, new = d.techniques, d.from_version, d.to_version
    return [
        Section("techniques_added", "Added techniques", _plain(t.added, new)),
        Section("techniques_reinstated", "Reinstated techniques", _plain(t.reinstated, new)),
        Section(
            "techniques_revoked",
            "Revoked techniques",
            [_revoked(r, old) for r in t.revoked],
        ),
        Section("techniques_deprecated", "Deprecated techniques", _plain(t.deprecated, old)),
        Section(
            "techniques_renamed",
            "Renamed techniques",
            [Row(r.id, r.new_name, new, f"was “{r.old_name}”") for r in t.renamed],
        ),
        Section(
            "techniques_tactics_changed",
            "Moved between tactics",
            [Row(x.id, x.name, new, _moves(x.added, x.removed)) for x in t.tactics_changed],
        ),
        Section(
            "techniques_subtechnique_changed",
            "Sub-technique changes",
            [_parent(x, new) for x in t.subtechnique_changed],
        ),
        Section(
            "techniques_platforms_changed",
            "Platforms changed",
            [Row(x.id, x.name, new, _moves(x.added, x.removed)) for x in t.platforms_changed],
        ),
        Section(
            "techniques_description_changed",
            "Description changed",
            _plain(t.description_changed, new),
        ),
    ]


def other_sections(d: ReleaseDiff) -> list[Section]:
    """Tactics and the other object kinds the diff lists (only kinds with a change)."""
    old, new = d.from_version, d.to_version
    out = [
        Section("tactics_added", "Added tactics", _plain(d.tactics.added, new)),
        Section("tactics_retired", "Retired tactics", _plain(d.tactics.retired, old)),
    ]
    for kind, changes in d.objects.items():
        label = KIND_NAMES.get(kind, kind.replace("_", " ").capitalize())
        out.append(Section(f"{kind}_added", f"{label} added", _plain(changes.added, new)))
        out.append(Section(f"{kind}_removed", f"{label} removed", _plain(changes.removed, old)))
    return [s for s in out if s.rows]


def impact_rows(impact: CatalogImpact) -> list[ImpactRow]:
    """The catalog's stale mappings, rule by rule, as the page's table shows them."""
    return [_impact_row(impact.catalog, s) for s in impact.stale]


def _impact_row(catalog: str, s: StaleMapping) -> ImpactRow:
    return ImpactRow(
        rule_id=s.rule_id,
        rule_name=s.rule_name,
        rule_href=rule_href(catalog, s.rule_id),
        written=s.written,
        stale_id=s.stale_id,
        status=s.status,
        suggested=s.suggested,
        chain=" → ".join(s.chain),
        new_here=s.changed_in_this_diff,
        already_resolved=s.already_resolved,
    )


def _plain(refs: Sequence[ObjectRef], version: str) -> list[Row]:
    return [Row(r.id, r.name, version) for r in refs]


def _revoked(r: RevokedTechnique, version: str) -> Row:
    if r.replacement:
        return Row(r.id, r.name, version, "replaced by", r.replacement, r.replacement_name or "")
    chain = f" ({' → '.join(r.chain)})" if r.chain else ""
    return Row(r.id, r.name, version, "no active replacement" + chain)


def _parent(x: SubtechniqueChange, version: str) -> Row:
    """A technique that became, or ceased to be, a sub-technique: its new parent is linked."""
    note = f"{x.change.replace('_', ' ')} · parent {x.old_parent or 'none'} →"
    if x.new_parent:
        return Row(x.id, x.name, version, note, x.new_parent)
    return Row(x.id, x.name, version, note + " none")


def _moves(added: Sequence[str], removed: Sequence[str]) -> str:
    parts = [f"+ {', '.join(added)}" if added else "", f"− {', '.join(removed)}" if removed else ""]
    return " · ".join(p for p in parts if p)
