"""Benchmark (issue: rule catalogs): catalog import speed, with attack-mapper as the peer.

Prints, from one run: the import of `sigma-attack18-rules.tar.gz` (4,002 rules: read the archive,
parse, validate against 18.1, link telemetry, write — one transaction) against the PyPI package
`attack-mapper` on the same rules extracted to a folder (goal: ≤ 0.25× its time), and the import
of the open-xp-rules tree (goal ≤ 0.5 s). Medians of --runs.
Run: python scripts/bench_catalog.py [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts._bench import ATTACK, CATALOGS, median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from app.attack.ingest import ingest_sources
    from app.catalog import service as catalog_service
    from app.catalog.source import open_source
    from app.core.config import Settings
    from app.core.db import init_db, make_engine

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/k.sqlite", environment="test")
        engine = make_engine(settings.database_url)
        init_db(engine)
        ingest_sources(
            engine, [str(ATTACK / "enterprise-attack-18.1.json.gz")], limits=settings.limits
        )
        catalog_service.log_source_map(settings)  # tables load once per process

        def kbmap_import(name: str) -> float:
            t = time.perf_counter()
            source = open_source(CATALOGS / name, settings.limits)
            catalog_service.import_catalog(engine, settings, source=source)
            return time.perf_counter() - t

        sigma = [kbmap_import("sigma-attack18-rules.tar.gz") for _ in range(args.runs)]
        xp = [kbmap_import("open-xp-rules-rules.tar.gz") for _ in range(args.runs)]

        rules = Path(tmp) / "sigma"
        with tarfile.open(CATALOGS / "sigma-attack18-rules.tar.gz") as tar:
            tar.extractall(rules, filter="data")
        folders = [str(p) for p in sorted(rules.iterdir()) if p.is_dir()]
        exe = shutil.which("attack-mapper")
        peer = []
        if exe:
            for _ in range(args.runs):
                t = time.perf_counter()
                subprocess.run(
                    [exe, *folders, "--quiet", "--json", f"{tmp}/am.json"],
                    check=True,
                    capture_output=True,
                )
                peer.append(time.perf_counter() - t)
    s = median(sigma)
    print(
        f"kbmap catalog import sigma-attack18 (4,002 rules, validation and telemetry included), "
        f"median of {args.runs}: {s:.2f} s"
    )
    if peer:
        p = median(peer)
        print(
            f"peer attack-mapper on the same rules, median: {p:.2f} s -> kbmap = {s / p:.2f}x "
            f"(goal <= 0.25x)"
        )
    else:
        print("peer attack-mapper not installed (pip install attack-mapper)")
    print(
        f"kbmap catalog import open-xp-rules (116 rules), median: {median(xp):.3f} s "
        "(goal <= 0.5 s)"
    )


if __name__ == "__main__":
    main()
