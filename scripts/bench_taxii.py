"""Benchmark (issue 17, part 2): `kbmap refresh --taxii` against a TAXII 2.1 server on 127.0.0.1.

Starts medallion (tests/refresh/taxii_server.py: the OASIS reference server, its memory backend
indexed, 200 objects a page, basic auth) with ICS ATT&CK 18.1 from the shared STIX 2.1 file, then:
- the full refresh into a fresh SQLite file (discovery → collections → release check → every
  page → assemble → verify → write), median of --full runs;
- the up-to-date refresh of the same collection (nothing new: discovery, collections and the one
  x-mitre-collection object; goal ≤ 1 s), median of --runs, in-process as `kbmap refresh` calls it,
  and once as the whole `kbmap refresh --taxii` process (interpreter and imports included).
Run: python scripts/bench_taxii.py [--runs 5] [--full 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pydantic import SecretStr

from app.core.config import Settings
from app.core.db import make_engine
from app.models import init_db
from app.refresh.taxii import refresh_taxii
from scripts._bench import ATTACK, ROOT, median
from tests.refresh.taxii_server import CollectionSpec, TaxiiServer

ICS = "x-mitre-collection--90c00720-636b-4485-b342-8751d232bf09"
GOAL = 1.0


def settings(folder: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{folder / 'kbmap.sqlite'}",
        environment="test",
        taxii_password=SecretStr("s3cret"),
    )


def full_refresh(url: str, tmp: Path, n: int) -> tuple[float, str]:
    """Seconds of a first refresh into an empty database; the database of the last run kept."""
    times, line = [], ""
    for i in range(n):
        folder = tmp / f"full{i}"
        folder.mkdir()
        s = settings(folder)
        engine = make_engine(s.database_url)
        init_db(engine)
        start = time.perf_counter()
        line = refresh_taxii(engine, s, url=url, user="kbmap").summary
        times.append(time.perf_counter() - start)
        engine.dispose()
    return median(times), line


def up_to_date(url: str, folder: Path, n: int) -> tuple[float, list[float], str]:
    s = settings(folder)
    engine = make_engine(s.database_url)
    times, line = [], ""
    for _ in range(n):
        start = time.perf_counter()
        line = refresh_taxii(engine, s, url=url, user="kbmap").summary
        times.append(time.perf_counter() - start)
    engine.dispose()
    return median(times), times, line


def whole_process(url: str, folder: Path) -> float:
    env = {
        **os.environ,
        "KBMAP_DATABASE_URL": f"sqlite:///{folder / 'kbmap.sqlite'}",
        "KBMAP_TAXII_PASSWORD": "s3cret",
    }
    args = [sys.executable, "-m", "app.cli.main", "refresh", "--taxii", url, "--user", "kbmap"]
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"kbmap refresh failed: {proc.stderr[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--full", type=int, default=3)
    args = parser.parse_args()
    with gzip.open(ATTACK / "stix21" / "ics-attack-18.1.json.gz") as fh:
        objects = json.load(fh)["objects"]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "medallion").mkdir()
        spec = [CollectionSpec(ICS, "ICS ATT&CK", objects)]
        with TaxiiServer(tmp / "medallion", spec) as server:
            url = server.discovery
            full, line = full_refresh(url, tmp, args.full)
            print(
                f"full refresh, ICS 18.1 ({len(objects)} objects, 200 a page), median of "
                f"{args.full}: {full:.2f} s  [{line}]"
            )
            last = tmp / f"full{args.full - 1}"
            mid, times, line = up_to_date(url, last, args.runs)
            runs = ", ".join(f"{t:.3f}" for t in times)
            verdict = "ok" if mid <= GOAL else "OVER GOAL"
            print(
                f"up-to-date refresh, in-process, median of {args.runs}: {mid:.3f} s "
                f"(goal <= {GOAL:g} s: {verdict}; runs {runs})  [{line}]"
            )
            print(
                f"up-to-date refresh, whole `kbmap refresh --taxii` process: "
                f"{whole_process(url, last):.2f} s (interpreter, imports, migrations check)"
            )
    print("load average: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
