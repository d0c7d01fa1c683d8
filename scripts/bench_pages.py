"""Benchmark (issue: server-rendered pages): /matrix and /techniques/{id} latency, in-process.

Builds a SQLite database under /tmp from enterprise ATT&CK 18.1 and the shared catalogs (plus the
shipped MaxPatrol catalog, validated against 18.1), then times, after a warm-up:
- GET /matrix?version=18.1 with every catalog (the whole enterprise matrix rendered server-side;
  goal p50 <= 150 ms);
- GET /techniques/{id}?version=18.1 over every technique of the release (goal p50 <= 20 ms).
Both go through TestClient, so the figures include routing, dependencies and Jinja2 rendering.
Run: python scripts/bench_pages.py [--runs 30] [--db /tmp/kbmap-pages.sqlite (kept, reused)]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts._bench import ATTACK, CATALOGS, ROOT, ms, pct

BUNDLE = ATTACK / "enterprise-attack-18.1.json.gz"
SHARED_CATALOGS = (
    (CATALOGS / "sigma-attack18-rules.tar.gz", "sigma-attack18"),
    (CATALOGS / "sigma-rules.tar.gz", "sigma"),
    (CATALOGS / "open-xp-rules-rules.tar.gz", "open-xp-rules"),
    (ROOT / "kb" / "catalogs" / "maxpatrol-siem.yaml", "maxpatrol-siem"),
)


def build_db(path: Path) -> None:
    """Enterprise 18.1 and every catalog, each import validated against 18.1."""
    from app.attack.ingest import ingest_sources
    from app.catalog import service as catalog_service
    from app.catalog.source import open_source
    from app.core.config import Settings
    from app.core.db import make_engine
    from app.models import init_db

    settings = Settings(database_url=f"sqlite:///{path}", environment="test")
    engine = make_engine(settings.database_url)
    init_db(engine)
    t = time.perf_counter()
    ingest_sources(engine, [str(BUNDLE)], limits=settings.limits)
    for file, name in SHARED_CATALOGS:
        source = open_source(file, settings.limits)
        catalog_service.import_catalog(
            engine, settings, source=source, name=name, domain="enterprise", version="18.1"
        )
    engine.dispose()
    print(f"built {path} in {time.perf_counter() - t:.1f} s")


def timed(client: object, url: str, runs: int) -> list[float]:
    from fastapi.testclient import TestClient

    assert isinstance(client, TestClient)
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        r = client.get(url)
        out.append(time.perf_counter() - t)
        assert r.status_code == 200, f"{url}: {r.status_code} {r.text[:300]}"
    return out


def figures(path: Path, runs: int) -> None:
    from fastapi.testclient import TestClient

    from app.core.config import Settings
    from app.main import create_app

    settings = Settings(database_url=f"sqlite:///{path}", environment="test")
    with TestClient(create_app(settings)) as client:
        matrix = "/matrix?version=18.1"
        timed(client, matrix, 3)  # warm-up: release facts and catalog mappings get cached
        times = timed(client, matrix, runs)
        size = len(client.get(matrix).content)
        print(
            f"/matrix enterprise 18.1, all 4 catalogs ({size / 1024:.0f} KiB of HTML), "
            f"{runs} runs: p50 {ms(pct(times, 50))}, p90 {ms(pct(times, 90))} (goal p50 <= 150 ms)"
        )
        techniques = client.get("/api/v1/coverage/techniques?version=18.1&limit=1000").json()
        ids = [t["id"] for t in techniques["items"]]
        timed(client, f"/techniques/{ids[0]}?version=18.1", 5)
        page_times = [timed(client, f"/techniques/{tid}?version=18.1", 1)[0] for tid in ids]
        seed = timed(client, "/techniques/T1550.001?version=18.1", runs)
        print(
            f"/techniques/{{id}} over {len(ids)} techniques of 18.1: "
            f"p50 {ms(pct(page_times, 50))}, p99 {ms(pct(page_times, 99))}; "
            f"T1550.001 p50 {ms(pct(seed, 50))} (goal p50 <= 20 ms)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
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
