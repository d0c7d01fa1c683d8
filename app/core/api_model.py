"""ApiModel: the one base of kbmap's API shapes (request and response bodies)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    """A pydantic model whose validator and serializer are built on first use.

    The tables' modules define their API shapes beside them, and `kbmap ingest` imports those
    modules for the tables alone: building some forty validators it never uses cost it 60 ms
    (measured). Attributes are read from ORM rows, as SQLModel's own shapes do.
    """

    model_config = ConfigDict(defer_build=True, from_attributes=True)
