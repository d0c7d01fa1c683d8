"""The page's detection block, for both ATT&CK detection models.

18+: the detection strategies that detect the technique, each with its analytics and their log
sources. ≤ 17: no strategies; data components (each with its data source) detect it. The data
components come from the ingest-time technique ↔ data component links either way.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.models import Ref
from app.attack.rows import Brief, ObjectRow
from app.technique_page.models import (
    AnalyticRead,
    DataComponentLink,
    DetectionStrategyRead,
    LogSource,
)

Detail = dict[str, ObjectRow]  # STIX id → object


def ref(o: Brief | ObjectRow) -> Ref:
    return Ref(id=o.attack_id, name=o.name)


def detection(
    session: Session,
    *,
    release_id: int,
    technique: ObjectRow,
    detects: list[tuple[str, Brief]],
) -> tuple[list[DetectionStrategyRead], list[DataComponentLink]]:
    """Both detection models: (strategies with analytics, data components)."""
    links = attack_service.technique_data_components(
        session, release_id=release_id, technique_ref=technique.stix_id
    )
    strategy_refs = [o.stix_id for _, o in detects if o.kind == "detection_strategy"]
    dc_refs = {dc for dc, _a in links}
    detail = attack_service.objects_by_stix_id(
        session,
        release_id=release_id,
        stix_ids=[*strategy_refs, *dc_refs, *(a for _dc, a in links if a)],
    )
    analytics_of = {
        r: detail[r].data.get("analytic_refs") or () for r in strategy_refs if r in detail
    }
    missing = [a for refs in analytics_of.values() for a in refs if a not in detail]
    if missing:  # analytics that name no data component have no link row
        detail.update(
            attack_service.objects_by_stix_id(session, release_id=release_id, stix_ids=missing)
        )
    texts = {o.stix_id: desc for desc, o in detects if o.kind == "data_component"}
    components = _components(
        session,
        release_id=release_id,
        dc_refs=dc_refs,
        detail=detail,
        texts=texts,
        with_sources=not strategy_refs,
    )
    return _strategies(analytics_of, detail), components


def _components(
    session: Session,
    *,
    release_id: int,
    dc_refs: set[str],
    detail: Detail,
    texts: dict[str, str],
    with_sources: bool,
) -> list[DataComponentLink]:
    """The data components, by name; ≤ 17 (`with_sources`) each with its data source."""
    source_of: dict[str, str] = {}  # data component → its data source, ≤ 17 only
    if with_sources:
        source_of = {d: detail[d].data.get("data_source_ref") or "" for d in dc_refs if d in detail}
    sources = attack_service.objects_by_stix_id(
        session, release_id=release_id, stix_ids=source_of.values()
    )
    out: list[DataComponentLink] = []
    for dc in sorted(dc_refs, key=lambda x: detail[x].name if x in detail else x):
        c = detail.get(dc)
        if c is None:
            continue
        ds = sources.get(source_of.get(dc, ""))
        out.append(
            DataComponentLink(
                id=c.attack_id,
                name=c.name,
                data_source=ref(ds) if ds else None,
                description=texts.get(dc, c.description),
            )
        )
    return out


def _strategies(
    analytics_of: dict[str, Iterable[str]], detail: Detail
) -> list[DetectionStrategyRead]:
    reads = []
    for s in sorted((detail[r] for r in analytics_of), key=lambda s: s.attack_id or ""):
        items = [_analytic(detail[a], detail) for a in analytics_of[s.stix_id] if a in detail]
        reads.append(DetectionStrategyRead(id=s.attack_id, name=s.name, analytics=items))
    return reads


def _analytic(a: ObjectRow, detail: Detail) -> AnalyticRead:
    extra = a.data
    return AnalyticRead(
        id=a.attack_id,
        name=a.name,
        platforms=a.platforms,
        description=a.description,
        log_sources=[_log_source(ls, detail) for ls in extra.get("log_source_references") or ()],
        mutable_elements=list(extra.get("mutable_elements") or ()),
    )


def _log_source(ls: dict[str, str], detail: Detail) -> LogSource:
    dc = ls.get("x_mitre_data_component_ref", "")
    return LogSource(
        data_component=ref(detail[dc]) if dc in detail else None,
        name=ls.get("name", ""),
        channel=ls.get("channel", ""),
    )
