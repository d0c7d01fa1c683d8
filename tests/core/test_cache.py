"""BoundedCache: least recently used out first, by entry count and by total weight."""

from __future__ import annotations

import threading

import pytest

from app.core.cache import BoundedCache


def test_count_bound_evicts_least_recently_used() -> None:
    cache: BoundedCache[str] = BoundedCache(2)
    cache.get_or_make("a", lambda: "A")
    cache.get_or_make("b", lambda: "B")
    assert cache.get_or_make("a", lambda: "stale") == "A"  # a is now the most recent
    cache.get_or_make("c", lambda: "C")  # evicts b
    assert len(cache) == 2
    assert cache.get_or_make("b", lambda: "B2") == "B2"  # made again: evicts a, the oldest now
    assert cache.get_or_make("c", lambda: "stale") == "C"
    assert cache.get_or_make("a", lambda: "A2") == "A2"


def test_weight_bound_keeps_the_total_under_the_budget() -> None:
    cache: BoundedCache[bytes] = BoundedCache(100, max_weight=10, weigh=len)
    for key in "abcd":
        cache.get_or_make(key, lambda: b"xxxx")  # 4 bytes each
    assert cache.weight <= 10
    assert len(cache) == 2
    assert cache.get_or_make("d", lambda: b"new") == b"xxxx"  # the newest stayed
    assert cache.get_or_make("a", lambda: b"new") == b"new"  # the oldest went


def test_value_larger_than_the_budget_is_served_not_kept() -> None:
    cache: BoundedCache[bytes] = BoundedCache(100, max_weight=10, weigh=len)
    cache.get_or_make("small", lambda: b"12345")
    assert cache.get_or_make("big", lambda: b"x" * 11) == b"x" * 11
    assert len(cache) == 1 and cache.weight == 5
    assert cache.get_or_make("big", lambda: b"again") == b"again"


def test_errors_are_not_cached() -> None:
    cache: BoundedCache[str] = BoundedCache(4)
    calls = 0

    def fail() -> str:
        nonlocal calls
        calls += 1
        raise LookupError("no such page")

    for _ in range(2):
        with pytest.raises(LookupError):
            cache.get_or_make("k", fail)
    assert calls == 2 and len(cache) == 0


def test_made_twice_at_once_keeps_one_and_the_weight_once() -> None:
    cache: BoundedCache[bytes] = BoundedCache(10, max_weight=100, weigh=len)
    gate = threading.Barrier(2)
    results: list[bytes] = []

    def make(tag: bytes) -> bytes:
        gate.wait()  # both threads are inside make() before either stores
        return tag

    threads = [
        threading.Thread(target=lambda t=t: results.append(cache.get_or_make("k", lambda: make(t))))
        for t in (b"first", b"other")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = cache.get_or_make("k", lambda: b"never")
    assert kept in (b"first", b"other")
    assert cache.weight == len(kept) and len(cache) == 1
