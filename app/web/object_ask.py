"""What an object page asks the services: the object's links, the coverage of what it links to,
the rules that read its data components and the environments that collect them; then the page.

The object is found by ATT&CK id, or STIX id for objects without one, in the release asked, or in
the first that has it. Each kind reads what it shows through the services (a few statements per
page, none per row) and hands `object_pages` (pure) the rows to build the page from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from fastapi.responses import HTMLResponse
from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.service import Brief, DetectionLink, ObjectRow
from app.catalog import service as catalog_service
from app.core.config import Settings
from app.coverage import service as coverage_service
from app.coverage.models import TechniqueCoverage
from app.environment import service as environment_service
from app.web import object_pages as op
from app.web import views
from app.web.rendering import render

if TYPE_CHECKING:  # the row type for annotations only: the reads go through the services
    from app.attack.tables import Release

GAPS_SHOWN = 25


@dataclass
class _Ask:
    """One object page's question: the object, its release, the catalogs and environment."""

    session: Session
    settings: Settings
    release: Release
    obj: ObjectRow
    catalogs: list[str]
    environment: str | None

    @property
    def rid(self) -> int:
        return self.release.id or 0

    @cached_property
    def rel(self) -> op.Release:
        return op.Release(self.release.domain, self.release.version)

    @cached_property
    def scope(self) -> coverage_service.Scope:
        """The page's catalogs and environment (resolved once: an unknown name is an error)."""
        return coverage_service.make_scope(
            self.session,
            release=self.release,
            catalogs=self.catalogs or None,
            environment=self.environment,
            kb_dir=self.settings.kb_dir,
        )

    def rows(self, techniques: Iterable[str | None]) -> dict[str, TechniqueCoverage]:
        """The coverage of the techniques the page lists (only those are scored), in the
        page's catalogs and environment."""
        wanted = frozenset(t for t in techniques if t)
        if not wanted:
            return {}
        scope = dataclasses.replace(self.scope, techniques=wanted)
        rows = coverage_service.technique_rows(
            self.session, scope=scope, weights=self.settings.coverage
        )
        return {r.id: r for r in rows}

    @cached_property
    def near(self) -> list[attack_service.Neighbour]:
        return attack_service.neighbours(
            self.session, release_id=self.rid, stix_id=self.obj.stix_id
        )

    def briefs(self, refs: Sequence[str | None]) -> dict[str, Brief]:
        live = attack_service.briefs(self.session, release_id=self.rid, refs=[r for r in refs if r])
        return {k: b for k, b in live.items() if b.live}

    def rules(self, components: Sequence[str], analytics: Sequence[str] = ()) -> list[op.RuleGroup]:
        found = catalog_service.rules_reading(
            self.session,
            catalogs=self.catalogs or None,
            data_components=components,
            analytics=analytics,
            limit=op.RULES_SHOWN,
        )
        return op.rule_groups(found)

    def collections(self, components: Sequence[str]) -> list[op.Collection]:
        found = environment_service.collectors(
            self.session, domain=self.release.domain, data_components=components
        )
        return op.collections(found)


# ---- what each kind shows ----------------------------------------------------------------------


def _threat(ask: _Ask, page: op.ObjectPage) -> None:
    """Group, software, campaign: techniques used, who and what it goes with, its gaps."""
    near, rel = ask.near, ask.rel
    uses = op.far_ends(near, "uses", "out", "technique")
    aid = ask.obj.attack_id or ""
    users = coverage_service.release_facts(ask.session, release=ask.release).technique_users
    threat = _threat_rows(ask, aid) if aid in users else []  # coverage refuses one using none
    rows = {r.id: r for r in threat}
    page.techniques = op.technique_lines(uses, rows, rel)
    page.techniques_title = "Techniques used"
    related = {
        "group": [
            ("Software used", ("uses", "out", "software")),
            ("Campaigns attributed to it", ("attributed-to", "in", "campaign")),
        ],
        "software": [
            ("Groups that use it", ("uses", "in", "group")),
            ("Campaigns that use it", ("uses", "in", "campaign")),
        ],
        "campaign": [
            ("Attributed to", ("attributed-to", "out", "group")),
            ("Software used", ("uses", "out", "software")),
        ],
    }[page.kind]
    page.related = [(label, op.links(op.far_ends(near, *how), rel)) for label, how in related]
    if ask.obj.kind == "group":  # what coverage counts for it through its campaigns
        direct = {b.attack_id for b, _ in uses}
        page.via_campaigns = _technique_lines(
            ask, [r.id for r in threat if r.id not in direct], rows
        )
    if threat:
        gaps = coverage_service.gaps(
            ask.session,
            scope=dataclasses.replace(ask.scope, threat=[aid]),
            weights=ask.settings.coverage,
            rows=threat,
        )
        page.gaps, page.gaps_total = gaps[:GAPS_SHOWN], len(gaps)
        page.gaps_href, page.layer_href = op.gap_links(rel, aid, ask.catalogs)


def _threat_rows(ask: _Ask, aid: str) -> list[TechniqueCoverage]:
    """The coverage of every technique a group, software or campaign uses (for a group, also
    through its campaigns): the rows its gap ranking reads."""
    scope = dataclasses.replace(ask.scope, threat=[aid])
    return coverage_service.technique_rows(ask.session, scope=scope, weights=ask.settings.coverage)


def _technique_lines(
    ask: _Ask, ids: Sequence[str], rows: dict[str, TechniqueCoverage]
) -> list[op.TechniqueLine]:
    """Technique ids (no relationship of the object's own) as coloured lines."""
    names = coverage_service.release_facts(ask.session, release=ask.release).index.techniques
    rel = ask.rel
    return [
        op.technique_line(
            op.Link(
                tid,
                names[tid].name if tid in names else tid,
                views.technique_href(tid, version=rel.version, domain=rel.domain),
            ),
            rows.get(tid),
        )
        for tid in ids
    ]


def _mitigation(ask: _Ask, page: op.ObjectPage) -> None:
    """A mitigation: the techniques it mitigates; those you cannot detect are the gaps it
    compensates (`page.uncovered`)."""
    pairs = op.far_ends(ask.near, "mitigates", "out", "technique")
    page.techniques = op.technique_lines(pairs, ask.rows(b.attack_id for b, _ in pairs), ask.rel)
    page.techniques_title = "Techniques it mitigates"


def _detected(
    ask: _Ask, links: Sequence[DetectionLink], via: Callable[[DetectionLink], list[str | None]]
) -> tuple[list[op.TechniqueLine], dict[str, Brief]]:
    """Techniques of detection links, each with what detects it (`via` picks the refs), plus
    the texts of the object's own `detects` relationships; the briefs read, for reuse."""
    refs = [x for link in links for x in (link.technique_ref, *via(link))]
    known = ask.briefs(refs)
    texts = {n.far.stix_id: n.description for n in ask.near if n.relationship_type == "detects"}
    by_tech: dict[str, list[op.Link]] = {}
    for link in links:
        tech = known.get(link.technique_ref)
        if tech is None or tech.kind != "technique":
            continue
        through = by_tech.setdefault(link.technique_ref, [])
        for ref in via(link):
            b = known.get(ref or "")
            lk = op.object_link(b, ask.rel) if b is not None else None
            if lk is not None and lk not in through:
                through.append(lk)
    for n in ask.near:  # a `detects` with no derived link still detects
        if n.relationship_type == "detects" and n.far.kind == "technique":
            known[n.far.stix_id] = n.far
            by_tech.setdefault(n.far.stix_id, [])
    rows = ask.rows(known[ref].attack_id for ref in by_tech)
    lines = [
        op.technique_line(
            op.object_link(known[ref], ask.rel),
            rows.get(known[ref].attack_id or ""),
            texts.get(ref, ""),
            sorted(through, key=lambda lk: lk.id or lk.name),
        )
        for ref, through in by_tech.items()
    ]
    return sorted(lines, key=lambda t: t.link.id or ""), known


def _components(ask: _Ask, page: op.ObjectPage, names: Sequence[str]) -> None:
    """Rules that read these data components (and the page's analytics), who collects them."""
    page.components = sorted(set(names), key=str.lower)
    analytics = [a.link.id for a in page.analytics if a.link.id]
    if page.kind == "analytic" and page.id:
        analytics.append(page.id)
    page.rules = ask.rules(page.components, analytics)
    page.collections = ask.collections(page.components)


def _data_component(ask: _Ask, page: op.ObjectPage) -> None:
    links = attack_service.detection_links(
        ask.session, release_id=ask.rid, kind="data_component", refs=[ask.obj.stix_id]
    )
    page.techniques, known = _detected(  # through its strategies (each analytic one click on)
        ask, links, lambda lk: [lk.detection_strategy_ref]
    )
    page.techniques_title = "Techniques it can detect"
    data = ask.obj.data
    source = ask.briefs([data.get("data_source_ref")])
    page.related = [("Data source", [op.object_link(b, ask.rel) for b in source.values()])]
    if ask.release.detection_model != "data-component":  # 18+: the strategies that read it
        refs = sorted({lk.detection_strategy_ref or "" for lk in links} & set(known))
        found = sorted((known[r] for r in refs), key=lambda b: b.attack_id or "")
        page.related.append(("Detection strategies", [op.object_link(b, ask.rel) for b in found]))
    page.log_sources = op.log_source_lines(data.get("log_sources") or (), {}, ask.rel)
    _components(ask, page, [ask.obj.name])


def _data_source(ask: _Ask, page: op.ObjectPage) -> None:
    comps = attack_service.components_of_source(
        ask.session, release_id=ask.rid, stix_id=ask.obj.stix_id
    )
    links = attack_service.detection_links(
        ask.session, release_id=ask.rid, kind="data_component", refs=[c.stix_id for c in comps]
    )
    page.techniques, _ = _detected(ask, links, lambda lk: [lk.data_component_ref])
    page.techniques_title = "Techniques its data components can detect"
    page.related = [
        (
            "Data components",
            [
                op.object_link(Brief(c.stix_id, c.kind, c.attack_id, c.name, False, False), ask.rel)
                for c in comps
            ],
        )
    ]
    _components(ask, page, [c.name for c in comps])


def _analytic_blocks(ask: _Ask, refs: Sequence[str]) -> tuple[list[op.AnalyticBlock], list[str]]:
    """A strategy's analytics with their log sources; and the data components they name."""
    objs = attack_service.objects_by_stix_id(ask.session, release_id=ask.rid, stix_ids=refs)
    datas = {sid: o.data for sid, o in objs.items() if not o.revoked and not o.deprecated}
    lsrs = {sid: d.get("log_source_references") or [] for sid, d in datas.items()}
    dcs = ask.briefs([e.get("data_component_ref") for es in lsrs.values() for e in es])
    blocks = [
        op.AnalyticBlock(
            op.object_link(
                Brief(sid, "analytic", objs[sid].attack_id, objs[sid].name, False, False), ask.rel
            ),
            list(objs[sid].platforms),
            objs[sid].description,
            op.log_source_lines(lsrs[sid], dcs, ask.rel),
        )
        for sid in sorted(datas, key=lambda s: objs[s].attack_id or s)
    ]
    return blocks, [b.name for b in dcs.values()]


def _detection_strategy(ask: _Ask, page: op.ObjectPage) -> None:
    links = attack_service.detection_links(
        ask.session, release_id=ask.rid, kind="detection_strategy", refs=[ask.obj.stix_id]
    )
    page.techniques, _ = _detected(ask, links, lambda lk: [lk.analytic_ref])
    page.techniques_title = "Techniques it detects"
    page.analytics, names = _analytic_blocks(ask, ask.obj.data.get("analytic_refs") or [])
    _components(ask, page, names)


def _analytic(ask: _Ask, page: op.ObjectPage) -> None:
    links = attack_service.detection_links(
        ask.session, release_id=ask.rid, kind="analytic", refs=[ask.obj.stix_id]
    )
    page.techniques, known = _detected(ask, links, lambda lk: [lk.detection_strategy_ref])
    page.techniques_title = "Techniques it detects"
    strategies = {lk.detection_strategy_ref for lk in links if lk.detection_strategy_ref}
    page.related = [
        (
            "Detection strategies",
            [op.object_link(known[s], ask.rel) for s in sorted(strategies) if s in known],
        )
    ]
    entries = ask.obj.data.get("log_source_references") or []
    dcs = ask.briefs([e.get("data_component_ref") for e in entries])
    page.log_sources = op.log_source_lines(entries, dcs, ask.rel)
    _components(ask, page, [b.name for b in dcs.values()])


_BUILD: dict[str, Callable[[_Ask, op.ObjectPage], None]] = {
    "group": _threat,
    "software": _threat,
    "campaign": _threat,
    "mitigation": _mitigation,
    "data_source": _data_source,
    "data_component": _data_component,
    "detection_strategy": _detection_strategy,
    "analytic": _analytic,
}


def object_page(
    session: Session,
    settings: Settings,
    releases: Sequence[Release],
    *,
    kind: str,
    ref: str,
    catalog: list[str] | None,
    environment: str | None,
) -> HTMLResponse:
    """Find the object, read what its kind shows, render `object.html`."""
    release, obj = attack_service.find_page_object(session, releases=releases, kind=kind, ref=ref)
    ask = _Ask(session, settings, release, obj, catalog or [], environment)
    page = op.base_page(obj, ask.rel)
    _BUILD[kind](ask, page)
    urls = lambda names: attack_service.citation_urls(  # noqa: E731
        session, release_id=ask.rid, names=names, stix_id=obj.stix_id
    )
    return render(
        "object.html",
        page=page,
        text=views.TextRenderer(version=release.version, domain=release.domain, source_urls=urls),
        catalog=catalog or [],
        environment=environment,
        catalogs=catalog_service.list_catalogs(session),
        environments=[
            e for e in environment_service.list_environments(session) if e.domain == release.domain
        ],
    )
