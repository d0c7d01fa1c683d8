"""Benchmark (issue 17: STIX export and import): sigma-attack18 (4,002 rules) to a STIX 2.1
bundle (goal <= 2 s), and that bundle imported back against the Sigma import of the tarball (goal
ratio <= 1.5), in one process on a database holding enterprise 18.1, medians of --runs; also
the Sigma import with its rule bodies dropped before the write (what keeping bodies costs).
`--validate` runs stix2-validator on the whole bundle (minutes: it re-crawls its schemas per
object) and prints its error and warning counts.
Run: python scripts/bench_stix.py [--runs 5] [--validate]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts._bench import ATTACK, CATALOGS, median

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.core.config import Settings

SIGMA = CATALOGS / "sigma-attack18-rules.tar.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--validate", action="store_true")
    args = ap.parse_args()
    from app.attack.ingest import ingest_sources
    from app.catalog import service as catalog_service
    from app.core.config import Settings
    from app.core.db import make_engine
    from app.models import init_db

    print(f"load average at start: {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/b.sqlite", environment="test")
        engine = make_engine(settings.database_url)
        init_db(engine)
        ingest_sources(
            engine, [str(ATTACK / "enterprise-attack-18.1.json.gz")], limits=settings.limits
        )
        catalog_service.log_source_map(settings)  # loaded once, as in a server
        _import_sigma(engine, settings, "sigma-attack18", keep_body=True)
        bundle, export, cpu = _exports(engine, args.runs)
        sigma, stix, bodiless = _imports(engine, settings, bundle, args.runs)
        engine.dispose()
    _report(len(bundle), (export, cpu), sigma, stix, bodiless, args.runs)
    if args.validate:
        _validate(bundle)


def _exports(engine: Engine, runs: int) -> tuple[bytes, list[float], list[float]]:
    """Wall and CPU time of each export (CPU time says what a busy machine's wall time hides)."""
    from sqlmodel import Session

    from app.catalog import service as catalog_service

    times, cpu, data = [], [], b""
    for _ in range(runs):
        with Session(engine) as s:
            t, c = time.perf_counter(), time.process_time()
            data = catalog_service.export_catalog(s, name="sigma-attack18", fmt="stix")[0]
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return data, times, cpu


def _imports(
    engine: Engine, settings: Settings, bundle: bytes, runs: int
) -> tuple[list[float], list[float], list[float]]:
    """Sigma, STIX and body-less Sigma imports in turns, so all three meet the same machine."""
    from app.catalog import service as catalog_service
    from app.catalog.source import source_from_bytes

    sigma, stix, bodiless = [], [], []
    for _ in range(runs):
        sigma.append(_import_sigma(engine, settings, "bench-sigma", keep_body=True))
        t = time.perf_counter()
        source = source_from_bytes("s.stix.json", bundle, settings.limits)
        catalog_service.import_catalog(engine, settings, source=source, name="bench-stix")
        stix.append(time.perf_counter() - t)
        bodiless.append(_import_sigma(engine, settings, "bench-nobody", keep_body=False))
    return sigma, stix, bodiless


def _import_sigma(engine: Engine, settings: Settings, name: str, *, keep_body: bool) -> float:
    """The tarball's Sigma import (`keep_body=False`: bodies dropped between parse and write)."""
    from app.catalog import service as catalog_service
    from app.catalog.source import open_source

    t = time.perf_counter()
    source = open_source(SIGMA, settings.limits)
    parsed = catalog_service.parse_source(source, format_id="sigma", limits=settings.limits)
    if not keep_body:
        for rule in parsed.rules:
            rule.body = None
    catalog_service.import_parsed(
        engine,
        settings,
        parsed=parsed,
        source_name=SIGMA.name,
        sha256="",
        name=name,
        domain="enterprise",
        version="18.1",
    )
    return time.perf_counter() - t


def _report(
    size: int,
    timed: tuple[list[float], list[float]],
    sigma: list[float],
    stix: list[float],
    bodiless: list[float],
    runs: int,
) -> None:
    pairs = sorted(a / b for a, b in zip(stix, sigma, strict=True))
    export, cpu = timed
    print(
        f"STIX export of sigma-attack18 (4,002 indicators, {size / 1e6:.1f} MB), median of {runs}: "
        f"{median(export):.2f} s (runs {_list(export)}; CPU {median(cpu):.2f} s; goal <= 2 s)"
    )
    print(
        f"import of that bundle: {median(stix):.2f} s (runs {_list(stix)}) vs Sigma import of the "
        f"tarball {median(sigma):.2f} s (runs {_list(sigma)}) -> "
        f"{median(stix) / median(sigma):.2f}x "
        f"(per pair {pairs[0]:.2f}-{pairs[-1]:.2f}x; goal <= 1.5x)"
    )
    print(
        f"Sigma import with bodies dropped before the write: {median(bodiless):.2f} s (runs "
        f"{_list(bodiless)}): bodies cost {median(sigma) - median(bodiless):+.2f} s"
    )
    print(f"load average at end: {_load()}")


def _validate(bundle: bytes) -> None:
    from stix2validator import validate_string

    t = time.perf_counter()
    results = validate_string(bundle.decode())
    print(
        f"stix2-validator on the whole bundle: valid={results.is_valid}, "
        f"{len(results.errors)} errors, {len(results.warnings)} warnings "
        f"({time.perf_counter() - t:.0f} s)"
    )
    for e in results.errors[:10]:
        print(f"  {e}")


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
