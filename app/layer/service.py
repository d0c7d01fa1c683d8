"""Layers: compute the results a kind needs, build the layer, render it; import a layer.

Results come from the coverage service (the same rows `/coverage/...` serves) and rule lists from
the catalog service; a diff layer shows the attack service's release diff (the one
`/releases/diff` serves). Rule notes are cached per catalog import and release load, release diffs
per pair of release loads, so after a warm-up a layer is in-memory work. An imported layer becomes
an ordinary catalog in kbmap's canonical format, so coverage, gaps and `/coverage/compare` work
against hand-kept coverage or a threat-intel actor layer.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Engine
from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.models import ReleaseChanges
from app.attack.tables import Release
from app.catalog import service as catalog_service
from app.catalog.models import CatalogRead
from app.core.config import CoverageWeights, Settings
from app.core.errors import InvalidInput, Location
from app.coverage import service as coverage_service
from app.coverage.service import Scope
from app.layer import build, importer
from app.layer.build import LayerContext, RuleLine, RuleNotes
from app.layer.navigator import Layer, MetadataItem, dump_layers
from app.layer.render import Cell, Column, render_svg, render_xlsx

Kind = Literal["coverage", "gaps", "threat", "telemetry", "compare", "diff"]
_CACHE_SIZE = 16
# what the picture routes send, and declare in OpenAPI
SVG = "image/svg+xml"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_cache_lock = threading.Lock()
_notes_cache: dict[tuple[Any, ...], dict[str, RuleNotes]] = {}
_diff_cache: dict[tuple[Any, ...], ReleaseChanges] = {}


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Bounded insert; routes run in a thread pool, so evictions take a lock."""
    with _cache_lock:
        while len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[key] = value


@dataclass(frozen=True)
class LayerRequest:
    """What a layer call asks beyond the coverage scope; fields unused by a kind are ignored."""

    kind: Kind
    base_url: str = "http://127.0.0.1:8000"
    collected: list[str] = field(default_factory=list)
    a: list[str] = field(default_factory=list)
    b: list[str] = field(default_factory=list)
    from_version: str | None = None
    to_version: str | None = None
    min_score: float = 0.0
    split: Literal["platform"] | None = None


def _split(values: Sequence[str] | None) -> list[str]:
    return [v.strip() for item in values or () for v in item.split(",") if v.strip()]


def release_platforms(session: Session, *, release: Release) -> list[str]:
    """The release's own platform names, collected from its active techniques."""
    return attack_service.vocabulary(session, release=release).platforms


def _context(session: Session, scope: Scope, req: LayerRequest) -> LayerContext:
    """What the layer says about itself; platform names are checked and spelt as the release
    spells them, so `filters.platforms` always holds names Navigator knows for that release."""
    words = attack_service.vocabulary(session, release=scope.release)
    known = words.platforms
    chosen = words.platform_names(scope.platforms)  # the diff layer's newer release may lack one
    return LayerContext(
        kind=req.kind,
        domain=scope.release.domain,
        version=scope.release.version,
        platforms=chosen or known,
        platform_filtered=bool(chosen),
        catalogs=[c.name for c in scope.catalogs],
        tactics=list(scope.tactics),
        threat=list(scope.threat),
        base_url=req.base_url.rstrip("/"),
    )


def build_layers(
    session: Session, *, scope: Scope, req: LayerRequest, weights: CoverageWeights
) -> list[Layer]:
    """One layer, or one per platform when `split=platform` (the request's platforms, else all)."""
    if req.split != "platform":
        return [build_layer(session, scope=scope, req=req, weights=weights)]
    ctx = _context(session, scope, req)
    return [
        build_layer(
            session, scope=dataclasses.replace(scope, platforms=[p]), req=req, weights=weights
        )
        for p in ctx.platforms
    ]


def build_layer(
    session: Session, *, scope: Scope, req: LayerRequest, weights: CoverageWeights
) -> Layer:
    """One layer of `req.kind`, from the rows the coverage API serves for the same scope."""
    ctx = _context(session, scope, req)
    if req.kind == "coverage":
        rows = coverage_service.technique_rows(session, scope=scope, weights=weights)
        notes = _rule_notes(session, scope, ctx.base_url)
        return build.coverage_layer(ctx, rows, notes, min_score=req.min_score)
    if req.kind == "gaps":
        gaps = coverage_service.gaps(
            session,
            scope=scope,
            weights=weights,
            collected=req.collected,
            min_score=req.min_score,
        )
        return build.gaps_layer(ctx, gaps, min_score=req.min_score)
    if req.kind == "threat":
        return _threat(session, scope, req, ctx, weights)
    if req.kind == "telemetry":
        return _telemetry(session, scope, req, ctx, weights)
    if req.kind == "compare":
        return _compare(session, scope, req, ctx, weights)
    return _diff(session, scope, req, ctx)


def _rule_notes(session: Session, scope: Scope, base_url: str) -> dict[str, RuleNotes]:
    """Covering rules per technique for the scope's catalogs, as layer metadata and links;
    cached per release load and catalog import (rule lists are the slow part of a layer)."""
    key = (
        scope.release.id,
        str(scope.release.loaded_at),
        tuple((c.id, str(c.imported_at)) for c in scope.catalogs),
        base_url,
    )
    if key not in _notes_cache:
        facts = coverage_service.release_facts(session, release=scope.release)
        found = (
            catalog_service.rules_for_techniques(
                session,
                techniques=facts.index.active_ids(),
                names={c.id or 0: c.name for c in scope.catalogs},
            )
            if scope.catalogs
            else {}
        )
        notes = {
            tid: build.rule_notes(
                [
                    RuleLine(r.catalog, r.rule_id, r.title or r.name or r.rule_id, r.enabled)
                    for r in refs
                ],
                base_url=base_url,
            )
            for tid, refs in found.items()
        }
        _remember(_notes_cache, key, notes)
    return _notes_cache[key]


def _threat(
    session: Session, scope: Scope, req: LayerRequest, ctx: LayerContext, w: CoverageWeights
) -> Layer:
    if not scope.threat:
        raise InvalidInput(
            "the threat layer needs groups= (group, software or campaign ids, e.g. G0016)",
            Location(field="groups"),
        )
    used = coverage_service.technique_rows(session, scope=scope, weights=w)
    every = coverage_service.technique_rows(
        session, scope=dataclasses.replace(scope, threat=[]), weights=w
    )
    facts = coverage_service.release_facts(session, release=scope.release)
    wanted = set(scope.threat)
    users = {
        r.id: sorted(
            (uid, facts.user_names.get(uid, uid))
            for ids in facts.users.get(r.id, {}).values()
            for uid in ids
            if uid in wanted
        )
        for r in used
    }
    ids = {r.id for r in used}
    others = [r.id for r in every if r.id not in ids]
    return build.threat_layer(ctx, used, others, users, min_score=req.min_score)


def _telemetry(
    session: Session, scope: Scope, req: LayerRequest, ctx: LayerContext, w: CoverageWeights
) -> Layer:
    collected = _split(req.collected)
    if not collected:
        raise InvalidInput(
            "the telemetry layer needs collected= (data components you collect, e.g. "
            "Process Creation)",
            Location(field="collected"),
        )
    facts = coverage_service.release_facts(session, release=scope.release)
    known = {dc.lower() for dcs in facts.data_components.values() for dc in dcs}
    unknown = sorted(c for c in collected if c.lower() not in known)
    if unknown:
        raise InvalidInput(
            f"unknown data component(s) in collected: {', '.join(unknown)}",
            Location(field="collected"),
        )
    rows = coverage_service.technique_rows(session, scope=scope, weights=w)
    return build.telemetry_layer(
        ctx, rows, facts.data_components, collected, min_score=req.min_score
    )


def _compare(
    session: Session, scope: Scope, req: LayerRequest, ctx: LayerContext, w: CoverageWeights
) -> Layer:
    a, b = _split(req.a), _split(req.b)
    if not a or not b:
        raise InvalidInput(
            "the compare layer needs a= and b= (catalogs of each side)",
            Location(field="a" if not a else "b"),
        )
    cmp = coverage_service.compare_catalogs(session, scope=scope, a=a, b=b, weights=w)
    facts = coverage_service.release_facts(session, release=scope.release)
    names = {t: i.name for t, i in facts.index.techniques.items()}
    return build.compare_layer(dataclasses.replace(ctx, catalogs=[*a, *b]), cmp, names)


def _diff(session: Session, scope: Scope, req: LayerRequest, ctx: LayerContext) -> Layer:
    domain = scope.release.domain
    to = (
        attack_service.get_release(session, domain=domain, version=req.to_version)
        if req.to_version
        else scope.release
    )
    if req.from_version:
        old = attack_service.get_release(session, domain=domain, version=req.from_version)
    else:
        older = [
            r.version
            for r in attack_service.list_releases(session)  # oldest first
            if r.domain == domain and _vkey(r.version) < _vkey(to.version)
        ]
        if not older:
            raise InvalidInput(
                f"no ATT&CK {domain} release older than {to.version} is loaded; "
                "name one with from=",
                Location(field="from"),
            )
        old = attack_service.get_release(session, domain=domain, version=older[-1])
    if old.version_key >= to.version_key:
        raise InvalidInput(
            f"from ({old.version}) must be older than to ({to.version})", Location(field="from")
        )
    changes = _release_changes(session, old, to)
    before = attack_service.release_view(session, release=old).techniques
    after = attack_service.release_view(session, release=to).techniques
    if to.id != scope.release.id:  # filters and platform names of the newer release
        ctx = _context(session, dataclasses.replace(scope, release=to), req)
    scoped = build.in_scope(after, platforms=ctx.platforms, tactics=scope.tactics)
    ctx = dataclasses.replace(ctx, catalogs=[])
    return build.diff_layer(ctx, changes, before, after, in_scope=scoped)


def _release_changes(session: Session, old: Release, new: Release) -> ReleaseChanges:
    """The attack service's release diff, kept per pair of release loads: a split layer asks
    once per platform, and the diff layer only reads it."""
    key = (attack_service.release_key(old), attack_service.release_key(new))
    changes = _diff_cache.get(key)
    if changes is None:
        changes = attack_service.diff_releases(session, old=old, new=new)
        _remember(_diff_cache, key, changes)
    return changes


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


# ---- files and pictures -----------------------------------------------------------------------


def layer_file(
    session: Session, *, scope: Scope, req: LayerRequest, weights: CoverageWeights
) -> tuple[bytes, str]:
    """(JSON bytes, download name): one layer object, or a list when split by platform."""
    layers = build_layers(session, scope=scope, req=req, weights=weights)
    content = dump_layers(layers if req.split else layers[0])
    return content, _filename(scope, req, "json")


def _filename(scope: Scope, req: LayerRequest, ext: str) -> str:
    version = req.to_version if req.kind == "diff" and req.to_version else scope.release.version
    return f"kbmap-{req.kind}-{scope.release.domain}-{version}.{ext}"


def matrix(session: Session, *, scope: Scope, release: Release | None = None) -> list[Column]:
    """Tactic columns in matrix order with the in-scope techniques under each, by name."""
    rel = release or scope.release
    index = coverage_service.release_facts(session, release=rel).index
    scoped = build.in_scope(index.techniques, platforms=scope.platforms, tactics=scope.tactics)
    subs: dict[str, list[str]] = {}
    for tid in sorted(scoped):
        if index.techniques[tid].is_subtechnique:
            subs.setdefault(tid.split(".")[0], []).append(tid)
    columns = []
    for t in index.tactics:
        if scope.tactics and t.shortname not in scope.tactics:
            continue
        cells = sorted(
            (
                Cell(
                    id=tid, name=index.techniques[tid].name, subtechniques=tuple(subs.get(tid, ()))
                )
                for tid in scoped
                if not index.techniques[tid].is_subtechnique
                and t.shortname in index.techniques[tid].tactics
            ),
            key=lambda c: (c.name.lower(), c.id),
        )
        columns.append(Column(shortname=t.shortname, name=t.name, cells=tuple(cells)))
    return columns


def render_layer(
    session: Session,
    *,
    scope: Scope,
    req: LayerRequest,
    weights: CoverageWeights,
    fmt: Literal["svg", "xlsx"],
) -> tuple[bytes, str, str]:
    """(content, media type, download name) of the layer drawn as a matrix heat map."""
    req = dataclasses.replace(req, split=None)
    layer = build_layer(session, scope=scope, req=req, weights=weights)
    release = scope.release
    if req.kind == "diff" and req.to_version:
        release = attack_service.get_release(
            session, domain=scope.release.domain, version=req.to_version
        )
    columns = matrix(session, scope=scope, release=release)
    subtitle = " · ".join(
        m.value for m in layer.metadata or () if isinstance(m, MetadataItem) and m.name in _SUBTITLE
    )
    name = _filename(scope, req, fmt)
    if fmt == "svg":
        return render_svg(layer, columns, subtitle=subtitle).encode(), SVG, name
    return render_xlsx(layer, columns, subtitle=subtitle), XLSX, name


_SUBTITLE = ("release", "catalogs", "platforms", "tactics", "threat", "A", "B", "from")


# ---- import -----------------------------------------------------------------------------------


def import_layer(
    engine: Engine,
    settings: Settings,
    *,
    data: bytes,
    filename: str,
    name: str,
    domain: str | None = None,
    version: str | None = None,
) -> CatalogRead:
    """A Navigator layer (or a list of them) becomes the catalog `name`; nothing changes on error.

    One rule per technique entry with a score above 0, or with no score and enabled with an
    annotation (colour, comment, metadata or links); an explicit score 0 means "not covered".
    """
    layers = importer.parse_layers(data, filename=filename, limits=settings.limits)
    with Session(engine) as session:
        release = _import_release(session, layers, domain, version)
    source = importer.catalog_source(
        layers, name=name, domain=release.domain, version=release.version, filename=filename
    )
    result = catalog_service.import_catalog(
        engine,
        settings,
        source=source,
        format_id="canonical",
        name=name,
        domain=release.domain,
        version=release.version,
    )
    return result.catalog


def _import_release(
    session: Session, layers: list[Layer], domain: str | None, version: str | None
) -> Release:
    """The caller's release, else the newest loaded one of the layer's ATT&CK version, else the
    newest of its domain (validation then folds revoked ids into their replacements)."""
    d = domain or layers[0].domain
    if version:
        return attack_service.get_release(session, domain=d, version=version)
    stated = layers[0].versions.attack
    if stated:
        matching = [
            r.version
            for r in attack_service.list_releases(session)  # oldest first
            if r.domain == d.lower().removesuffix("-attack")
            and (r.version == stated or r.version.split(".")[0] == stated)
        ]
        if matching:
            return attack_service.get_release(session, domain=d, version=matching[-1])
    return attack_service.get_release(session, domain=d)
