"""Which catalogs a request names (repeatable; none means all)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

CatalogsQuery = Annotated[
    list[str] | None, Query(max_length=20, description="catalog name (repeatable; default all)")
]
