"""Layers: pick the kind a request names, gather and build it, render it; import a layer.

A kind (`app.layer.kinds`) reads through `Sources` — the coverage rows `/coverage/...` serves,
the catalog service's rule lists, the attack service's release diff — so a layer never disagrees
with the API. An imported layer becomes an ordinary catalog in kbmap's canonical format, so
coverage, gaps and `/coverage/compare` work against hand-kept coverage or a threat-intel actor
layer.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine
from sqlmodel import Session

from app.attack import service as attack_service
from app.catalog import service as catalog_service
from app.catalog.models import CatalogRead
from app.core.config import CoverageWeights, Settings
from app.core.errors import InvalidInput, Location
from app.coverage import service as coverage_service
from app.coverage.service import Scope, split_values
from app.layer import importer
from app.layer.entries import LayerContext, in_scope
from app.layer.kinds import KINDS, KindName, LayerKind, LayerRequest
from app.layer.navigator import Layer, MetadataItem, dump_layers
from app.layer.render import Cell, Column, render_svg, render_xlsx
from app.layer.sources import Sources

if TYPE_CHECKING:
    from app.attack.tables import Release

__all__ = [
    "SVG",
    "XLSX",
    "KindName",
    "LayerRequest",
    "build_layer",
    "build_layers",
    "import_layer",
    "kind_of",
    "layer_file",
    "matrix",
    "release_platforms",
    "render_layer",
]

# what the picture routes send, and declare in OpenAPI
SVG = "image/svg+xml"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_SUBTITLE = (
    "release",
    "catalogs",
    "platforms",
    "tactics",
    "threat",
    "environment",
    "A",
    "B",
    "from",
)


def release_platforms(session: Session, *, release: Release) -> list[str]:
    """The release's own platform names, collected from its active techniques."""
    return attack_service.vocabulary(session, release=release).platforms


def kind_of(req: LayerRequest) -> LayerKind[Any]:
    """The kind `req` names with the parameters it takes; list options split at commas."""
    kind = KINDS.get(req.kind)
    if kind is None:
        raise InvalidInput(
            f"unknown layer kind {req.kind!r}; known: {', '.join(KINDS)}", Location(field="kind")
        )
    taken = {f.name: getattr(req, f.name) for f in dataclasses.fields(kind)}
    return kind(**{k: split_values(v) if isinstance(v, list) else v for k, v in taken.items()})


def _context(session: Session, scope: Scope, req: LayerRequest) -> LayerContext:
    """What the layer says about itself; platform names are checked and spelt as the release
    spells them, so `filters.platforms` always holds names Navigator knows for that release."""
    words = attack_service.vocabulary(session, release=scope.release)
    chosen = words.platform_names(scope.platforms)  # the diff layer's newer release may lack one
    return LayerContext(
        kind=req.kind,
        domain=scope.release.domain,
        version=scope.release.version,
        platforms=chosen or words.platforms,
        platform_filtered=bool(chosen),
        catalogs=[c.name for c in scope.catalogs],
        tactics=list(scope.tactics),
        threat=list(scope.threat),
        base_url=req.base_url.rstrip("/"),
        environment=scope.environment.telemetry.name if scope.environment else None,
    )


def _takes_environment(kind: LayerKind[Any], scope: Scope) -> None:
    """A kind that does not read the scope's environment refuses one: a layer never looks judged
    by an environment it ignored."""
    if scope.environment is None or kind.takes_environment:
        return
    hint = f"; {kind.environment_hint}" if kind.environment_hint else ""
    takers = ", ".join(k for k, v in KINDS.items() if v.takes_environment)
    raise InvalidInput(
        f"the {kind.name} layer takes no environment= (layers that do: {takers}){hint}",
        Location(field="environment"),
    )


def _shown(session: Session, scope: Scope, kind: LayerKind[Any]) -> Scope:
    """The scope with the release the layer shows (a diff's newer one)."""
    version = kind.shown_version(scope)
    if version == scope.release.version:
        return scope
    domain = scope.release.domain
    release = attack_service.get_release(session, domain=domain, version=version)
    return dataclasses.replace(scope, release=release)


def build_layers(
    session: Session, *, scope: Scope, req: LayerRequest, weights: CoverageWeights
) -> list[Layer]:
    """One layer, or one per platform when `split=platform` (the request's platforms, else all)."""
    if req.split != "platform":
        return [build_layer(session, scope=scope, req=req, weights=weights)]
    ctx = _context(session, scope, req)
    return [
        _named_by_platform(
            build_layer(
                session, scope=dataclasses.replace(scope, platforms=[p]), req=req, weights=weights
            ),
            p,
        )
        for p in ctx.platforms
    ]


def _named_by_platform(layer: Layer, platform: str) -> Layer:
    """A split layer's name says its platform: Navigator lists the layers of one file by name,
    and without it they would all read alike."""
    return layer.model_copy(update={"name": f"{layer.name} — {platform}"})


def build_layer(
    session: Session, *, scope: Scope, req: LayerRequest, weights: CoverageWeights
) -> Layer:
    """One layer of `req.kind`, from the rows the coverage API serves for the same scope."""
    kind = kind_of(req)
    _takes_environment(kind, scope)
    scope = _shown(session, scope, kind)
    ctx = _context(session, scope, req)
    found = kind.gather(Sources(session, weights, ctx.base_url), scope)
    return kind.build(ctx, found)


# ---- files and pictures -----------------------------------------------------------------------


def layer_file(
    session: Session, *, scope: Scope, req: LayerRequest, weights: CoverageWeights
) -> tuple[bytes, str]:
    """(JSON bytes, download name): one layer object, or a list when split by platform."""
    layers = build_layers(session, scope=scope, req=req, weights=weights)
    content = dump_layers(layers if req.split else layers[0])
    return content, _filename(scope, req, "json")


def _filename(scope: Scope, req: LayerRequest, ext: str) -> str:
    version = kind_of(req).shown_version(scope)
    return f"kbmap-{req.kind}-{scope.release.domain}-{version}.{ext}"


def matrix(session: Session, *, scope: Scope) -> list[Column]:
    """Tactic columns in matrix order with the in-scope techniques under each, by name."""
    index = coverage_service.release_facts(session, release=scope.release).index
    scoped = in_scope(index.techniques, platforms=scope.platforms, tactics=scope.tactics)
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
                    id=tid,
                    name=index.techniques[tid].name,
                    subtechniques=tuple(subs.get(tid, ())),
                    sub_names=tuple(index.techniques[s].name for s in subs.get(tid, ())),
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
    columns = matrix(session, scope=_shown(session, scope, kind_of(req)))
    subtitle = " · ".join(
        m.value for m in layer.metadata or () if isinstance(m, MetadataItem) and m.name in _SUBTITLE
    )
    name = _filename(scope, req, fmt)
    if fmt == "svg":
        return render_svg(layer, columns, subtitle=subtitle).encode(), SVG, name
    return render_xlsx(layer, columns, subtitle=subtitle), XLSX, name


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
