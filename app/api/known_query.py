"""A misspelt query parameter is refused, never ignored: the guard every API route carries."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.core.errors import InvalidInput, Location


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route declares, those of its dependencies included."""
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not declare: ignoring `tatic=x` would answer a
    question nobody asked (every technique) as if it were the one asked."""
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute):
        return  # most reads (the technique page) send none: no walk of the dependencies
    known = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidInput(
            f"unknown query parameter {', '.join(repr(u) for u in unknown)}; "
            f"{route.path} takes: {', '.join(sorted(known)) or 'no query parameters'}",
            Location(field=unknown[0]),
        )


KnownQueryOnly = Depends(reject_unknown_query)
