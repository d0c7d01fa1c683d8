"""Shared helpers for the benchmark scripts: timing, percentiles, child-process runs."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KBMAP_SHARED_DIR", ROOT.parent / "shared"))
ATTACK = SHARED / "attack"
CATALOGS = SHARED / "catalogs"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def ms(v: float) -> str:
    return f"{v * 1000:.2f} ms"


def timed_runs(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def run_process(args: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of a child process, via /usr/bin/time when present."""
    e = {**os.environ, **(env or {})}
    if Path("/usr/bin/time").exists():
        t = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", *args], env=e, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            sys.exit(f"benchmark child failed: {' '.join(args)}\n{proc.stderr[-2000:]}")
        return wall, int(proc.stderr.strip().splitlines()[-1])
    t = time.perf_counter()
    subprocess.run(args, env=e, check=True, capture_output=True)
    return time.perf_counter() - t, 0


def median(values: list[float]) -> float:
    return statistics.median(values)
