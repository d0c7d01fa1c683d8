"""Search speed: p50 and p95 of `GET /api/v1/search` and of the search service alone, for a list
of queries, on a database (default /tmp/kbmap-pages.sqlite: enterprise 18.1 + the catalogs).

    .venv/bin/python scripts/bench_search.py [DATABASE_FILE] [--rounds N]

The first query of a process builds the indexes (reported apart); the figures after it are the
cached indexes' (the state a running server is in).
"""

from __future__ import annotations

import argparse
import statistics
import time

from fastapi.testclient import TestClient

from app.attack import service as attack_service
from app.core.config import Settings
from app.core.db import make_engine, read_session
from app.main import create_app
from app.search import service as search_service

QUERIES = (
    "T1550.001",
    "G0016",
    "PT-CR-956",
    "DET0185",
    "APT29",
    "Cozy Bear",
    "access token",
    "powershell",
    "mimikatz",
    "credential dumping",
    "lateral movement",
    "T1059",
    "scheduled task",
    "registry run keys",
    "kerberos",
    "sigma",
    "Lazarus",
    "process injection",
    "S0154",
    "windows event log",
)


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("database", nargs="?", default="/tmp/kbmap-pages.sqlite")
    args.add_argument("--rounds", type=int, default=5)
    opts = args.parse_args()
    url = f"sqlite:///{opts.database}"
    settings = Settings(database_url=url, environment="test")
    engine = make_engine(url)
    with read_session(engine) as session:
        release = attack_service.get_release(session, domain=None, version=None)
        start = time.perf_counter()
        search_service.search(session, release=release, q="x")
        print(f"index build (first query): {1000 * (time.perf_counter() - start):.0f} ms")
        service_times = _service(session, release, opts.rounds)
    with TestClient(create_app(settings)) as client:
        client.get("/api/v1/search", params={"q": "x"})
        api_times = _api(client, opts.rounds)
    for label, times in (("service", service_times), ("GET /api/v1/search", api_times)):
        p50, p95 = percentiles(times)
        print(f"{label}: p50 {1000 * p50:.1f} ms, p95 {1000 * p95:.1f} ms ({len(times)} queries)")


def _service(session: object, release: object, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        for q in QUERIES:
            start = time.perf_counter()
            search_service.search(session, release=release, q=q)  # type: ignore[arg-type]
            times.append(time.perf_counter() - start)
    return times


def _api(client: TestClient, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        for q in QUERIES:
            start = time.perf_counter()
            response = client.get("/api/v1/search", params={"q": q})
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
    return times


if __name__ == "__main__":
    main()
