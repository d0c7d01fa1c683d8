"""Benchmark (issue 17, MCP): what an MCP tool call adds over the service call it wraps.

Builds (or reuses, --db) the bench_pages database: enterprise 18.1 and every shared catalog. For a
few tools it times, after a warm-up, the median of N runs of
- the service function the API route calls (in a read session, as the route has one);
- the same question through kbmap's MCP server in process, with the SDK's own client over its
  in-memory JSON-RPC streams (`mode="legacy"`: the framing stdio and HTTP carry), built as
  `kbmap mcp` builds it (calls on the event loop's thread) and as /mcp does (a worker thread
  per call);
and prints the overhead (goal: at most 5 ms), which includes the compact answer (Markdown page,
cut lists), JSON-RPC both ways and, for /mcp, the thread hop. The load average is printed too: a
thread hop costs a wake-up, which on a busy machine is milliseconds.
Run: python scripts/bench_mcp.py [--runs 50] [--db /tmp/kbmap-pages.sqlite (kept, reused)]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts._bench import median, ms
from scripts.bench_pages import build_db

GOAL = 0.005


class Pair(NamedTuple):
    service: float
    tool: float
    added: float  # median of (tool - service), run by run, wall time
    added_cpu: float  # the same in this process's CPU time


MODES = (("stdio", False), ("http", True))  # as `kbmap mcp` and /mcp build the server


def _services(engine: Any, settings: Any) -> dict[str, Callable[[], object]]:
    """Per tool, the service call its API route makes."""
    from app.attack import service as attack_service
    from app.catalog import service as catalog_service
    from app.core.db import read_session
    from app.coverage import service as coverage_service
    from app.technique_page import service as page_service

    def techniques() -> object:
        with read_session(engine) as s:
            release = attack_service.get_release(s, domain=None, version=None)
            return attack_service.list_techniques(s, release=release, q="powershell", limit=10)

    def rules() -> object:
        with read_session(engine) as s:
            return catalog_service.list_rules(s, q="powershell", limit=10)

    def rule() -> object:
        with read_session(engine) as s:
            return catalog_service.get_rule(s, catalog="sigma", rule_id=RULE)

    def gaps() -> object:
        with read_session(engine) as s:
            scope = coverage_service.make_scope(s, kb_dir=settings.kb_dir)
            return coverage_service.gap_page(s, scope=scope, weights=settings.coverage, limit=10)

    return {
        "technique_page": lambda: page_service.technique_page_json(engine, attack_id="T1059.001"),
        "search_techniques": techniques,
        "search_rules": rules,
        "rule": rule,
        "gaps": gaps,
    }


RULE = "0152550d-3a26-4efd-9f0e-54a0b28ae2f3"  # a sigma rule mapped to T1059.001
ARGS: dict[str, dict[str, Any]] = {
    "technique_page": {"attack_id": "T1059.001"},
    "search_techniques": {"query": "powershell"},
    "search_rules": {"query": "powershell"},
    "rule": {"catalog": "sigma", "rule_id": RULE},
    "gaps": {},
}


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


async def _paired(client: Any, name: str, service: Callable[[], object], runs: int) -> Pair:
    """Medians of the service call, of the tool call, and of their difference run by run, in
    wall time and in this process's CPU time: each tool call is timed right after its service
    call, so both meet the same machine load, and CPU time is what the MCP layer itself costs
    when other processes share the cores."""
    for _ in range(3):
        service()
        result = await client.call_tool(name, ARGS[name])
        assert not result.is_error, result.content
    rows = []
    for _ in range(runs):
        w0, c0 = _clocks()
        service()
        w1, c1 = _clocks()
        await client.call_tool(name, ARGS[name])
        w2, c2 = _clocks()
        rows.append((w1 - w0, w2 - w1, (w2 - w1) - (w1 - w0), (c2 - c1) - (c1 - c0)))
    return Pair(*(median([r[i] for r in rows]) for i in range(4)))


def figures(path: Path, runs: int) -> None:
    import anyio
    from mcp import Client

    from app.core.config import Settings
    from app.core.db import make_engine
    from app.mcp.server import build_server

    settings = Settings(database_url=f"sqlite:///{path}", environment="test")
    engine = make_engine(settings.database_url)
    services = _services(engine, settings)

    async def through(threads: bool) -> dict[str, Pair]:
        server = build_server(engine, settings, threads=threads)
        async with Client(server, mode="legacy") as client:
            return {n: await _paired(client, n, fn, runs) for n, fn in services.items()}

    modes = {label: anyio.run(through, threads) for label, threads in MODES}
    load = os.getloadavg()[0]
    print(
        f"MCP tool call vs the service call, median of {runs} runs, load average {load:.1f} on "
        f"{os.cpu_count()} CPUs (goal overhead <= 5 ms):"
    )
    for name in services:
        cells = [
            f"{mode}: service {ms(p[name].service)}, tool {ms(p[name].tool)}, "
            f"+{ms(p[name].added)} (CPU +{ms(p[name].added_cpu)})"
            for mode, p in modes.items()
        ]
        print(f"  {name:<18} " + " | ".join(cells))
    for label, field in (("wall", "added"), ("CPU", "added_cpu")):
        worst = max(getattr(p[n], field) for p in modes.values() for n in services)
        verdict = "within" if worst <= GOAL else "OVER"
        print(f"  worst overhead ({label}) {ms(worst)}: {verdict} the 5 ms goal")
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--db", type=Path, help="keep the database here and reuse it when present")
    args = ap.parse_args()
    if args.db:
        if not args.db.exists():
            build_db(args.db)
        figures(args.db, args.runs)
        return
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = Path(tmp) / "kbmap-pages.sqlite"
        build_db(path)
        figures(path, args.runs)


if __name__ == "__main__":
    main()
