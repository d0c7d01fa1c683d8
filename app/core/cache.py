"""Derived data of immutable things, cached in process: one owner per database, one clear().

A loaded release never changes (a re-ingest makes a new row), and a catalog changes only by a
write that gives it a new revision, so derived indexes are cached under explicit keys: the
release's (`attack.service.release_key`) or the catalog's (`catalog.service.catalog_key`). Stale
entries simply stop being asked for and age out. Every worker process keeps its own; the keys,
read from the database in the request's snapshot, keep them all correct.

Each domain declares its caches as `CacheSpec`s (a name, a size, a value type); `caches_of(session)`
finds the owner of the session's database (the one on `app.state.caches` for the service), which
makes each cache on first use. Writers call `clear()` so this process frees memory at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import Enum, auto
from threading import Lock
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

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


@dataclass(frozen=True)
class CacheSpec(Generic[V]):
    """A cache a domain declares: its name (unique), entry bound and optional weight bound."""

    name: str
    size: int = 16
    max_weight: int | None = None
    weigh: Callable[[V], int] | None = None


class Caches:
    """Every derived-data cache of one database: made on first use, emptied by one `clear()`."""

    def __init__(self) -> None:
        self._caches: dict[str, BoundedCache[Any]] = {}
        self._lock = Lock()

    def get(self, spec: CacheSpec[V]) -> BoundedCache[V]:
        with self._lock:
            found = self._caches.get(spec.name)
            if found is None:
                found = BoundedCache(spec.size, max_weight=spec.max_weight, weigh=spec.weigh)
                self._caches[spec.name] = found
            return found

    def clear(self) -> None:
        """Empty every cache: a writer (ingest, import, upgrade, delete) calls it."""
        with self._lock:
            for cache in self._caches.values():
                cache.clear()

    def sizes(self) -> dict[str, int]:
        """Entries per cache, for tests and diagnostics."""
        with self._lock:
            return {name: len(cache) for name, cache in sorted(self._caches.items())}


_owners: WeakKeyDictionary[Engine, Caches] = WeakKeyDictionary()
_owners_lock = Lock()


def caches_of(bind: Engine | Connection | Session) -> Caches:
    """The owner of the caches of `bind`'s database (one per engine, gone with the engine)."""
    engine = _engine_of(bind)
    with _owners_lock:
        owner = _owners.get(engine)
        if owner is None:
            owner = _owners[engine] = Caches()
        return owner


def _engine_of(bind: Engine | Connection | Session) -> Engine:
    if isinstance(bind, Session):
        found = bind.get_bind()
        return found if isinstance(found, Engine) else found.engine
    return bind if isinstance(bind, Engine) else bind.engine


def cached(
    bind: Engine | Connection | Session, spec: CacheSpec[V], key: Hashable, make: Callable[[], V]
) -> V:
    """`spec`'s value for `key` in `bind`'s database, made by `make` on a miss: the one call
    every per-release or per-catalog cache goes through."""
    return caches_of(bind).get(spec).get_or_make(key, make)
