"""Independent jobs on two cores: a forked child works through chunks beside the caller.

The parse of a large rule tree (one YAML file per job) is the one use. Fork, not spawn: the child
inherits the jobs and the function, so nothing is sent to it and the caller's script is not
imported again (spawn re-ran scripts that have no `__main__` guard). Only on Linux with two cores
or more, not inside a daemonic process (which may not have children), and only from `MIN_BYTES`
of input: below that the fork and the results' trip back cost more than they save.

Both processes claim contiguous chunks from a shared counter, so a core busy with other work
does not hold the other back, and the caller puts the results back in job order. A chunk the
child did not return (it failed, died or stopped answering) is run again in the caller, in
order, so results and the first exception raised are those of a serial run.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")

MIN_BYTES = 1 << 20  # sigma-attack18's rules are 9 MB; a parse of 1 MB takes about 0.1 s
CHUNKS = 32  # small enough that the last chunk leaves little imbalance
CHILD_WAIT_S = 60.0  # past this the child is presumed stuck and its chunks are run here

Chunks = dict[int, list[Any]]


@dataclass
class Pending(Generic[R]):
    """Work under way. `result()` finishes it in the caller, once; `background` says a second
    process works on it meanwhile, so the caller may do other work first; `cancel()` stops it."""

    finish: Callable[[], R]
    background: bool = False
    cancel: Callable[[], None] = lambda: None

    def result(self) -> R:
        return self.finish()

    def then(self, fn: Callable[[R], S]) -> Pending[S]:
        return Pending(lambda: fn(self.finish()), self.background, self.cancel)


def can_fork(size: int) -> bool:
    """Whether `size` bytes of input are worth a second process here (see the module doc)."""
    return (
        size >= MIN_BYTES
        and sys.platform.startswith("linux")
        and len(os.sched_getaffinity(0)) >= 2
        and not mp.current_process().daemon
    )


def start_map(
    fn: Callable[[T], R], jobs: Sequence[T], sizes: Sequence[int], *, parallel: bool | None = None
) -> Pending[list[R]]:
    """`[fn(job) for job in jobs]`, begun on a forked child when `parallel` (by default: when
    the jobs' `sizes` add up to enough, `can_fork`)."""
    if parallel is None:
        parallel = can_fork(sum(sizes))
    bounds = _bounds(sizes, CHUNKS)
    if not parallel or len(bounds) < 2:
        return Pending(lambda: [fn(job) for job in jobs])
    return _Fork(fn, jobs, bounds).start()


def _bounds(sizes: Sequence[int], n: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) job ranges of about equal total size."""
    step = max(1, sum(sizes)) / n
    out: list[tuple[int, int]] = []
    lo = acc = 0
    for i, size in enumerate(sizes):
        acc += size
        if acc >= step * (len(out) + 1):
            out.append((lo, i + 1))
            lo = i + 1
    if lo < len(sizes):
        out.append((lo, len(sizes)))
    return out


class _Fork(Generic[T, R]):
    """One run: the child, the counter both claim chunks from, the pipe results come back on."""

    def __init__(
        self, fn: Callable[[T], R], jobs: Sequence[T], bounds: list[tuple[int, int]]
    ) -> None:
        self.fn, self.jobs, self.bounds = fn, jobs, bounds
        self.ctx = mp.get_context("fork")
        self.counter: Any = None
        self.child: BaseProcess | None = None
        self.recv: Connection | None = None
        self.answered = False

    def start(self) -> Pending[list[R]]:
        try:
            self.counter = self.ctx.Value("q", 0)
            self.recv, send = self.ctx.Pipe(duplex=False)
            child = self.ctx.Process(target=self._child, args=(send,), daemon=True)
            child.start()
            self.child = child
            send.close()
        except OSError:  # no /dev/shm, no processes left: the caller does it all
            self.cancel()
            self.counter = None
        return Pending(self.finish, self.child is not None, self.cancel)

    def chunk(self, k: int) -> list[R]:
        lo, hi = self.bounds[k]
        return [self.fn(job) for job in self.jobs[lo:hi]]

    def claim(self, done: Chunks) -> None:
        """Run chunks off the counter until none is left or one fails (left to the caller)."""
        while self.counter is not None:
            with self.counter.get_lock():
                k = self.counter.value
                self.counter.value = k + 1
            if k >= len(self.bounds):
                return
            try:
                done[k] = self.chunk(k)
            except Exception:
                return

    def _child(self, send: Connection) -> None:
        # Ctrl-C is the caller's to handle (it ends this process); and what the caller left for
        # the collector stays untouched: a connection found there and closed here would close
        # the caller's (a PostgreSQL one says goodbye on the shared socket)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        gc.freeze()
        done: Chunks = {}
        self.claim(done)
        # the caller gave up waiting, or a result does not pickle: either way the caller runs
        # these chunks itself, and this process must not print a traceback over its output
        with contextlib.suppress(Exception):
            send.send(done)

    def finish(self) -> list[R]:
        done: Chunks = {}
        try:
            self.claim(done)
            done.update(self._received())
        finally:
            self.cancel()
        for k in range(len(self.bounds)):
            if k not in done:
                done[k] = self.chunk(k)
        return [r for k in range(len(self.bounds)) for r in done[k]]

    def _received(self) -> Chunks:
        """The child's chunks; none when it died, hung or sent something unreadable (the caller
        runs those chunks again, so any failure here costs time, never a result)."""
        if self.recv is None or not self.recv.poll(CHILD_WAIT_S):
            return {}
        try:
            got: Chunks = self.recv.recv()
        except Exception:
            return {}
        self.answered = True
        return got

    def cancel(self) -> None:
        """Close the pipe and end the child, at once unless it has answered; idempotent."""
        if self.recv is not None:
            self.recv.close()
            self.recv = None
        if self.child is not None:
            if self.answered:
                self.child.join(1.0)
            if self.child.is_alive():
                self.child.terminate()
            self.child.join()
            self.child = None
