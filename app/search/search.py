"""One question: what in a release and the loaded catalogs matches a query, grouped by kind,
best first. The indexes are `index.py`'s (cached), the scores `ranking.py`'s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from sqlmodel import Session

from app.core.errors import InvalidInput
from app.search import index
from app.search.models import KINDS, PAGE_FOLDER, KindResults, SearchHit, SearchResults
from app.search.ranking import Entry, parse_query

if TYPE_CHECKING:
    from app.attack.tables import Release

MAX_LIMIT = 100


def search(
    session: Session,
    *,
    release: Release,
    q: str,
    kinds: Sequence[str] | None = None,
    limit: int = 10,
    offset: int = 0,
) -> SearchResults:
    """Hits of `q` in the release's ATT&CK objects, the rules of every loaded catalog and the
    catalogs, grouped by kind; each group's total and `limit` of its hits from `offset`. The
    kind with the best hit comes first (an exact id or name before descriptions), ties in the
    order of KINDS."""
    query = parse_query(q)
    if query is None:
        raise InvalidInput("q has no word to search for: give an id, a name or words")
    parts = [index.release_index(session, release), *index.catalog_indexes(session)]
    wanted = _kinds(kinds, parts)
    order = {k: i for i, k in enumerate(KINDS)}
    found = [hit for part in parts for hit in part.find(query, wanted, order)]
    found.sort(key=lambda hit: hit[0])
    groups: dict[str, list[index.Scored]] = {}
    for hit in found:
        groups.setdefault(hit[1].kind, []).append(hit)
    link = urlencode({"version": release.version, "domain": release.domain})
    return SearchResults(
        query=q,
        domain=release.domain,
        version=release.version,
        kinds=list(wanted),
        total=len(found),
        groups=[
            KindResults(
                kind=k,
                total=len(hits),
                offset=offset,
                hits=[_hit(h, link) for h in hits[offset : offset + limit]],
            )
            for k, hits in sorted(groups.items(), key=lambda g: (g[1][0][0], order[g[0]]))
        ],
    )


def _kinds(asked: Sequence[str] | None, parts: Sequence[index.SearchIndex]) -> list[str]:
    """The kinds asked for, each known; all of them when none is asked. Known: the kinds the
    release has, rules and catalogs."""
    present = set().union(*(p.kinds for p in parts)) | {"rule", "catalog"}
    known = [k for k in KINDS if k in present]
    unknown = sorted({k for k in asked or () if k not in known})
    if unknown:
        raise InvalidInput(f"unknown kind {', '.join(unknown)}; known: {', '.join(known)}")
    return [k for k in known if k in asked] if asked else known


def _hit(scored: index.Scored, link: str) -> SearchHit:
    _key, entry, (points, where, _length) = scored
    return SearchHit(
        kind=entry.kind,
        id=entry.id,
        name=entry.name,
        matched=where,
        score=points,
        live=entry.live,
        catalog=entry.catalog,
        href=href(entry, link),
    )


def href(entry: Entry, link: str) -> str | None:
    """kbmap's page of the entry (`link`: the release's query string), None for tactics and
    assets, which have none."""
    if entry.kind == "rule":
        return f"/catalogs/{quote(entry.catalog or '', safe='')}/rules/{quote(entry.id, safe='')}"
    folder = PAGE_FOLDER.get(entry.kind)
    if folder is None:
        return None
    if entry.kind == "catalog":
        return f"/catalogs/{quote(entry.id, safe='')}"
    return f"/{folder}/{quote(entry.id, safe='')}?{link}"
