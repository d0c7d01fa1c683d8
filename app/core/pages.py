"""The generic page shape every list endpoint returns."""

from __future__ import annotations

from typing import Generic, TypeVar

from app.core.api_model import ApiModel

T = TypeVar("T")


class Page(ApiModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
