"""What each MCP tool does: one read session, one call of the service the API route calls, and
the answer made compact (an assistant's context is small: lists paged and cut, few fields).

Every function here is synchronous and blocking; `server.py` runs it in a worker thread. Filter
values are resolved by the same functions the API's dependencies call (`make_scope`,
`get_release`, `catalog_ids`), so an unknown one is the same error listing what is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from app.attack import service as attack_service
from app.catalog import service as catalog_service
from app.core.cache import CacheSpec, caches_of
from app.core.config import Settings
from app.core.db import read_session
from app.coverage import service as coverage_service
from app.coverage.models import Gap, Onboarding
from app.refresh import impact
from app.refresh.models import CatalogImpact
from app.search import service as search_service
from app.technique_page import service as page_service
from app.technique_page.markdown import LINE_CHARS, one_line, technique_markdown
from app.technique_page.models import TechniquePage

DESCRIPTION_CHARS = 2000
BODY_CHARS = 3000  # of a rule's own text: enough for a Sigma rule's detection, not a whole file
# The Markdown of a page, keyed by the page's JSON as the page cache serves it (so by everything
# the page is made of) and the rules offset: reading a large page back into its model costs ten
# times what the cached JSON does (173 kB for T1059.001: 10 ms against 0.3 ms, measured).
MARKDOWN: CacheSpec[str] = CacheSpec(
    "mcp.technique_markdown", size=1024, max_weight=8 << 20, weigh=len
)
FEW = 5  # items kept of a long list inside one answer item


@dataclass(frozen=True)
class ScopeArgs:
    """A coverage question's filters, as the API's query parameters name them."""

    domain: str | None = None
    version: str | None = None
    catalogs: list[str] | None = None
    platforms: list[str] | None = None
    tactics: list[str] | None = None
    groups: list[str] | None = None
    environment: str | None = None


def page(items: list[Any], *, total: int, offset: int) -> dict[str, Any]:
    """A list answer: its items, how many there are, and where the next page starts."""
    following = offset + len(items)
    return {
        "total": total,
        "offset": offset,
        "next_offset": following if following < total else None,
        "items": items,
    }


def few(values: Sequence[Any], limit: int = FEW) -> list[Any]:
    """The first `limit` values, and "… N more" when there are more."""
    kept = list(values[:limit])
    return [*kept, f"… {len(values) - limit} more"] if len(values) > limit else kept


def _scope(session: Session, settings: Settings, args: ScopeArgs) -> coverage_service.Scope:
    return coverage_service.make_scope(
        session,
        domain=args.domain,
        version=args.version,
        catalogs=args.catalogs,
        platforms=args.platforms,
        tactics=args.tactics,
        threat=args.groups,
        environment=args.environment,
        kb_dir=settings.kb_dir,
    )


# ---- the tools -------------------------------------------------------------------------------


def technique_page(
    engine: Engine,
    settings: Settings,
    *,
    attack_id: str,
    domain: str | None = None,
    version: str | None = None,
    catalogs: list[str] | None = None,
    environment: str | None = None,
    rules_offset: int = 0,
) -> str:
    """The API's technique page (its page cache included), in Markdown of at most 8 kB."""
    body = page_service.technique_page_json(
        engine,
        attack_id=attack_id,
        domain=domain,
        version=version,
        catalogs=catalogs,
        environment=environment,
        settings=settings,
    )

    def render() -> str:
        page = TechniquePage.model_validate_json(body)
        return technique_markdown(page, rules_offset=rules_offset)

    return caches_of(engine).get(MARKDOWN).get_or_make((body, rules_offset), render)


def search(
    engine: Engine,
    *,
    query: str,
    domain: str | None = None,
    version: str | None = None,
    kinds: list[str] | None = None,
    limit: int = 10,
    offset: int = 0,
) -> dict[str, Any]:
    """The API's search (same ranking), each hit cut to its id, name, where it matched, and a
    rule's catalog."""
    with read_session(engine) as session:
        release = attack_service.get_release(session, domain=domain, version=version)
        found = search_service.search(
            session, release=release, q=query, kinds=kinds, limit=limit, offset=offset
        )
    groups = [
        {
            "kind": g.kind,
            "total": g.total,
            "next_offset": offset + limit if offset + limit < g.total else None,
            "hits": [
                h.model_dump(mode="json", exclude={"href"}, exclude_none=True) for h in g.hits
            ],
        }
        for g in found.groups
    ]
    return {"domain": found.domain, "version": found.version, "total": found.total} | {
        "groups": groups
    }


def search_techniques(
    engine: Engine,
    *,
    query: str | None,
    domain: str | None = None,
    version: str | None = None,
    tactic: str | None = None,
    platform: str | None = None,
    limit: int = 10,
    offset: int = 0,
) -> dict[str, Any]:
    with read_session(engine) as session:
        release = attack_service.get_release(session, domain=domain, version=version)
        found = attack_service.list_techniques(
            session,
            release=release,
            q=query,
            tactic=tactic,
            platform=platform,
            limit=limit,
            offset=offset,
        )
    items = [
        {"id": t.id, "name": t.name, "tactics": t.tactics, "platforms": t.platforms}
        for t in found.items
    ]
    return {"domain": release.domain, "version": release.version} | page(
        items, total=found.total, offset=offset
    )


def search_rules(
    engine: Engine,
    *,
    query: str | None,
    catalogs: list[str] | None = None,
    technique: str | None = None,
    subtechniques: bool = False,
    limit: int = 10,
    offset: int = 0,
) -> dict[str, Any]:
    with read_session(engine) as session:
        found = catalog_service.list_rules(
            session,
            catalogs=catalogs,
            technique=technique,
            include_subtechniques=subtechniques,
            q=query,
            limit=limit,
            offset=offset,
        )
    items = [
        {
            "catalog": r.catalog,
            "rule_id": r.rule_id,
            "title": one_line(r.title or r.name),
            "techniques": sorted({m.technique for m in r.mappings if m.technique}),
        }
        for r in found.items
    ]
    return page(items, total=found.total, offset=offset)


def rule(engine: Engine, *, catalog: str, rule_id: str) -> dict[str, Any]:
    """One rule as the API reads it, its long texts shortened and the format's extra fields
    named, not given (the API's rule answer has them)."""
    with read_session(engine) as session:
        found = catalog_service.get_rule(session, catalog=catalog, rule_id=rule_id)
    data = found.model_dump(mode="json", exclude_none=True, exclude={"extra"})
    data["extra_fields"] = sorted(found.extra)
    description = data.get("description") or ""
    if len(description) > DESCRIPTION_CHARS:
        data["description"] = description[: DESCRIPTION_CHARS - 1] + "…"
    body = found.body or ""
    if len(body) > BODY_CHARS:
        data["body"] = f"{body[:BODY_CHARS]}… ({len(body) - BODY_CHARS} more characters)"
    data["title"] = one_line(found.title, LINE_CHARS)
    data["references"] = few(found.references, 10)
    data["raw_tags"] = few(found.raw_tags, 20)
    return data


def coverage_summary(engine: Engine, settings: Settings, *, scope: ScopeArgs) -> dict[str, Any]:
    with read_session(engine) as session:
        found = coverage_service.summary(
            session, scope=_scope(session, settings, scope), weights=settings.coverage
        )
    return found.model_dump(mode="json", exclude_none=True)


def gaps(
    engine: Engine,
    settings: Settings,
    *,
    scope: ScopeArgs,
    collected: list[str] | None = None,
    min_score: float = 0.0,
    limit: int = 10,
    offset: int = 0,
) -> dict[str, Any]:
    with read_session(engine) as session:
        found = coverage_service.gap_page(
            session,
            scope=_scope(session, settings, scope),
            weights=settings.coverage,
            collected=collected,
            min_score=min_score,
            limit=limit,
            offset=offset,
        )
    return page([_gap(g) for g in found.items], total=found.total, offset=offset)


def _gap(g: Gap) -> dict[str, Any]:
    row = {
        "id": g.id,
        "name": g.name,
        "tactics": g.tactics,
        "platforms": g.platforms,
        "score": g.score,
        "priority": g.priority,
        "telemetry": g.parts.telemetry,
        "threat_uses": g.parts.threat_uses,
        "groups": few(g.groups),
        "data_components": few(g.data_components),
        "collected_data_components": few(g.collected_data_components),
        "mitigations": few([m.get("id") or m.get("name", "") for m in g.mitigations]),
    }
    if g.state is not None:
        row |= {"state": g.state, "missing_log_sources": few(g.missing_log_sources or [])}
    return row


def compare_catalogs(
    engine: Engine,
    settings: Settings,
    *,
    scope: ScopeArgs,
    a: list[str],
    b: list[str],
    limit: int = 10,
    offset: int = 0,
) -> dict[str, Any]:
    """Counts per side and per tactic; of each technique list, `limit` ids from `offset`."""
    with read_session(engine) as session:
        found = coverage_service.compare_catalogs(
            session, scope=_scope(session, settings, scope), a=a, b=b, weights=settings.coverage
        )
    lists = {k: getattr(found, k) for k in ("both", "only_a", "only_b", "neither")}
    longest = max(len(v) for v in lists.values())
    following = offset + limit
    return {
        "domain": found.domain,
        "version": found.version,
        "a": found.a,
        "b": found.b,
        "counts": {k: len(v) for k, v in lists.items()},
        "by_tactic": [r.model_dump(mode="json") for r in found.by_tactic],
        "techniques": {k: v[offset:following] for k, v in lists.items()},
        "offset": offset,
        "next_offset": following if following < longest else None,
    }


def collect_next(
    engine: Engine, settings: Settings, *, scope: ScopeArgs, limit: int = 10, offset: int = 0
) -> dict[str, Any]:
    with read_session(engine) as session:
        found = coverage_service.collect_next(
            session,
            scope=_scope(session, settings, scope),
            weights=settings.coverage,
            limit=limit,
            offset=offset,
        )
    return page([_onboarding(o) for o in found.items], total=found.total, offset=offset)


def _onboarding(o: Onboarding) -> dict[str, Any]:
    data = o.model_dump(mode="json", exclude={"techniques", "rules"})
    return data | {"techniques": few(o.techniques, 10), "rules": few(o.rules)}


def release_diff(
    engine: Engine,
    settings: Settings,
    *,
    from_version: str,
    to_version: str,
    domain: str = "enterprise",
    catalogs: list[str] | None = None,
    limit: int = 10,
    offset: int = 0,
) -> dict[str, Any]:
    """Counts of what changed, `limit` entries of each change list from `offset`, and each
    catalog's impact with its stale mappings paged the same way."""
    with read_session(engine) as session:
        found = impact.release_diff(
            session,
            domain=domain,
            from_version=from_version,
            to_version=to_version,
            catalogs=catalogs,
            weights=settings.coverage,
        )
    window = slice(offset, offset + limit)
    changes = found.techniques.model_dump(mode="json")
    return {
        "domain": found.domain,
        "from_version": found.from_version,
        "to_version": found.to_version,
        "detection_model_before": found.detection_model_before,
        "detection_model_after": found.detection_model_after,
        "counts": found.counts,
        "techniques": {k: [_changed(x) for x in v[window]] for k, v in changes.items()},
        "catalogs": [_impact(c, window) for c in found.catalogs],
        "offset": offset,
        "limit": limit,
    }


def _changed(entry: dict[str, Any]) -> dict[str, Any]:
    """A change entry without the long texts a description change can carry."""
    return {k: v for k, v in entry.items() if k not in ("old", "new")}


def _impact(c: CatalogImpact, window: slice) -> dict[str, Any]:
    data = c.model_dump(mode="json", exclude={"stale", "by_tactic"})
    stale = [
        s.model_dump(mode="json", include={"rule_id", "written", "stale_id", "status", "suggested"})
        for s in c.stale[window]
    ]
    return data | {"stale": stale}
