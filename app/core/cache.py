"""A small bounded in-process cache for derived data of immutable things.

A loaded release never changes (a re-ingest makes a new row), and a catalog changes only by
re-import (a new import time), so their derived indexes are cached under keys that include the id
and load time; stale entries simply stop being asked for and age out. Every worker process keeps
its own; the key, read from the database in the request's snapshot, keeps them all correct.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from enum import Enum, auto
from threading import Lock
from typing import Generic, TypeVar

V = TypeVar("V")


class _Missing(Enum):
    MISSING = auto()


_MISSING = _Missing.MISSING  # "not cached", apart from any value, None included


class BoundedCache(Generic[V]):
    """Least-recently-used, bounded by entry count and, when `weigh` is given, by total weight
    (bytes of rendered pages, which range from a few KB to 150 KB)."""

    def __init__(
        self,
        size: int = 16,
        *,
        max_weight: int | None = None,
        weigh: Callable[[V], int] | None = None,
    ) -> None:
        self._size = size
        self._max_weight = max_weight
        self._weigh = weigh
        self._weight = 0
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = Lock()

    def get(self, key: Hashable) -> V | None:
        found = self._lookup(key)
        return None if found is _MISSING else found

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        found = self._lookup(key)
        if found is not _MISSING:
            return found
        value = make()
        w = self._weigh(value) if self._weigh else 0
        if self._max_weight is not None and w > self._max_weight:
            return value  # larger than the whole budget: serve it, keep nothing
        with self._lock:
            if key in self._data:  # made twice at once: keep the first
                return self._data[key]
            self._data[key] = value
            self._weight += w
            while len(self._data) > self._size or (
                self._max_weight is not None and self._weight > self._max_weight
            ):
                _, old = self._data.popitem(last=False)
                self._weight -= self._weigh(old) if self._weigh else 0
        return value

    def _lookup(self, key: Hashable) -> V | _Missing:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)  # most recently used
                return self._data[key]
        return _MISSING

    def __len__(self) -> int:
        return len(self._data)

    @property
    def weight(self) -> int:
        return self._weight

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._weight = 0
