"""Benchmark (issue: rule catalogs): catalog import speed, with attack-mapper as the peer.

Prints, from one run: the whole `kbmap catalog import sigma-attack18-rules.tar.gz` process (4,002
rules: start-up, read the archive, parse, validate against 18.1, link telemetry, write in one
transaction, print the report) into a fresh copy of a SQLite database holding enterprise 18.1,
against the PyPI package `attack-mapper` on the same rules extracted to a folder, the two run in
turns so both meet the same machine (goal: ≤ 0.2× its time); and the in-process import of the
open-xp-rules tree (goal ≤ 0.5 s). Medians of --runs, the ratio per pair, and the load average.
Run: python scripts/bench_catalog.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts._bench import ATTACK, CATALOGS, median, run_process

SIGMA = CATALOGS / "sigma-attack18-rules.tar.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    kbmap = str(Path(sys.executable).with_name("kbmap"))  # the command a user runs
    beside = Path(sys.executable).with_name("attack-mapper")
    peer = str(beside) if beside.exists() else shutil.which("attack-mapper")
    print(f"load average at start: {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        base, run = Path(tmp) / "base.sqlite", Path(tmp) / "run.sqlite"
        env = {"KBMAP_DATABASE_URL": f"sqlite:///{run}"}
        run_process([kbmap, "ingest", str(ATTACK / "enterprise-attack-18.1.json.gz")], env)
        shutil.move(run, base)
        folders = _extract(SIGMA, Path(tmp) / "sigma")
        ours: list[float] = []
        theirs: list[float] = []
        rss = 0
        for _ in range(args.runs):
            shutil.copyfile(base, run)  # every import meets the same database: 18.1, no catalog
            wall, rss = run_process([kbmap, "catalog", "import", str(SIGMA)], env)
            ours.append(wall)
            if peer:
                am = [peer, *folders, "--quiet", "--json", f"{tmp}/am.json"]
                theirs.append(run_process(am)[0])
            for f in Path(tmp).glob("run.sqlite*"):
                f.unlink()
        xp = _xp_in_process(base, Path(tmp), args.runs)
    _report(ours, theirs, rss, xp, args.runs)


def _extract(tarball: Path, to: Path) -> list[str]:
    """The rule folders of the archive, extracted for the peer (which reads folders only)."""
    with tarfile.open(tarball) as tar:
        tar.extractall(to, filter="data")
    return [str(p) for p in sorted(to.iterdir()) if p.is_dir()]


def _xp_in_process(base: Path, tmp: Path, runs: int) -> list[float]:
    """The open-xp-rules tree imported in this process (its goal predates the whole-process
    figure): the tables are loaded once, as in a server."""
    from app.catalog import service as catalog_service
    from app.catalog.source import open_source
    from app.core.config import Settings
    from app.core.db import make_engine

    db = tmp / "xp.sqlite"
    shutil.copyfile(base, db)
    settings = Settings(database_url=f"sqlite:///{db}", environment="test")
    engine = make_engine(settings.database_url)
    catalog_service.log_source_map(settings)
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        source = open_source(CATALOGS / "open-xp-rules-rules.tar.gz", settings.limits)
        catalog_service.import_catalog(engine, settings, source=source)
        out.append(time.perf_counter() - t)
    engine.dispose()
    return out


def _report(ours: list[float], theirs: list[float], rss: int, xp: list[float], runs: int) -> None:
    s = median(ours)
    print(
        f"whole `kbmap catalog import` of sigma-attack18 (4,002 rules, into a copy of a database "
        f"holding 18.1), median of {runs}: {s:.2f} s (runs {_list(ours)}; peak RSS {rss // 1024} "
        "MB)"
    )
    if theirs:
        p = median(theirs)
        pairs = sorted(a / b for a, b in zip(ours, theirs, strict=True))
        print(
            f"peer attack-mapper on the same rules, same runs, median: {p:.2f} s (runs "
            f"{_list(theirs)}) -> kbmap = {s / p:.3f}x (per pair {pairs[0]:.3f}-{pairs[-1]:.3f}x; "
            "goal <= 0.2x)"
        )
    else:
        print("peer attack-mapper not installed (pip install attack-mapper)")
    print(
        f"kbmap catalog import open-xp-rules (116 rules), in-process, median: {median(xp):.3f} s "
        "(goal <= 0.5 s)"
    )
    print(f"load average at end: {_load()}")


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
