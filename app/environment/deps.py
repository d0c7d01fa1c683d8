"""The environment a request names (`environment=NAME`), for every coverage, gap, layer and
page route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

EnvironmentQuery = Annotated[
    str | None,
    Query(
        max_length=80,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="environment name: count only rules its telemetry lets fire",
    ),
]
EnvironmentPath = Annotated[str, Path(max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
