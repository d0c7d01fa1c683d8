"""Search route: thin — parse, call the search service, return its answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.attack.deps import ReleaseDep
from app.core.deps import SessionDep
from app.search import service as search_service
from app.search.models import SearchResults

router = APIRouter()

# 1..200 characters, no control character (as core.deps.QText), required
SearchText = Annotated[
    str,
    Query(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        description="ids (T1550.001, G0016, PT-CR-956), names, aliases, titles or words",
    ),
]
KindQuery = Annotated[
    list[str] | None,
    Query(max_length=20, description="kind(s) to search: technique, group, rule, … (default all)"),
]
LimitQuery = Annotated[
    int, Query(ge=1, le=search_service.MAX_LIMIT, description="hits shown per kind")
]

OffsetQuery = Annotated[int, Query(ge=0, le=10_000, description="where each kind's hits start")]


@router.get("/search", tags=["search"])
def search(
    session: SessionDep,
    release: ReleaseDep,
    q: SearchText,
    kind: KindQuery = None,
    limit: LimitQuery = 10,
    offset: OffsetQuery = 0,
) -> SearchResults:
    """Ids, names, aliases, rule titles and descriptions, ranked: an exact id first, a name
    before a description; results grouped by kind with each group's total."""
    return search_service.search(
        session, release=release, q=q, kinds=kind, limit=limit, offset=offset
    )
