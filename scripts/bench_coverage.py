"""Benchmark (issue: coverage and gaps): summary, gaps and technique-page latency.

Prints, from one run on enterprise 18.1:
- with the shared catalogs loaded (sigma-attack18, sigma, open-xp-rules, maxpatrol-siem; ~8k
  rules): coverage summary p50, gaps for G0016 p50, technique page with rules p50 (all in-process,
  after one warm-up call that builds the per-release and per-catalog caches; the first call is
  printed too);
- with a synthetic 100,000 rules across 20 catalogs (random active techniques, statuses and
  levels): summary p50 and the process's peak memory.
Run: python scripts/bench_coverage.py
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts._bench import ATTACK, CATALOGS, ms, pct, timed_runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    from sqlmodel import Session

    from app.attack import service as attack_service
    from app.attack.ingest import ingest_sources
    from app.catalog import service as catalog_service
    from app.catalog.source import open_source
    from app.core.config import Settings
    from app.core.db import make_engine
    from app.coverage import service as coverage_service
    from app.models import init_db
    from app.technique_page import service as page_service

    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(database_url=f"sqlite:///{tmp}/k.sqlite", environment="test")
        engine = make_engine(s.database_url)
        init_db(engine)
        ingest_sources(engine, [str(ATTACK / "enterprise-attack-18.1.json.gz")], limits=s.limits)
        for f in (
            "sigma-attack18-rules.tar.gz",
            "sigma-rules.tar.gz",
            "open-xp-rules-rules.tar.gz",
        ):
            catalog_service.import_catalog(engine, s, source=open_source(CATALOGS / f, s.limits))
        catalog_service.import_catalog(
            engine,
            s,
            source=open_source(Path("kb/catalogs/maxpatrol-siem.yaml"), s.limits),
            domain="enterprise",
            version="18.1",
        )
        with Session(engine) as session:
            release = attack_service.get_release(session)
            scope = coverage_service.make_scope(session, release=release)
            threat = coverage_service.make_scope(session, release=release, threat=["G0016"])
            t = time.perf_counter()
            coverage_service.summary(session, scope=scope, weights=s.coverage)
            first = time.perf_counter() - t
            summ = timed_runs(
                lambda: coverage_service.summary(session, scope=scope, weights=s.coverage),
                args.runs,
            )
            gaps = timed_runs(
                lambda: coverage_service.gap_page(
                    session, scope=threat, weights=s.coverage, limit=100
                ),
                args.runs,
            )
            releases = [release]
            ids = attack_service.technique_index(session, release=release).active_ids()
            page = []
            for tid in ids:
                t = time.perf_counter()
                page_service.get_technique_page(session, releases=releases, attack_id=tid)
                page.append(time.perf_counter() - t)
        rules = sum(c.rule_count for c in catalog_service.list_catalogs(Session(engine)))
        print(f"shared catalogs ({rules} rules), enterprise 18.1, in-process:")
        print(
            f"  coverage summary: first call {ms(first)}, then p50 {ms(pct(summ, 50))} "
            "(goal <= 50 ms)"
        )
        print(
            f"  gaps for G0016 (first page, with mitigations): p50 {ms(pct(gaps, 50))} "
            "(goal <= 50 ms)"
        )
        print(
            f"  technique page with rules, {len(ids)} techniques: p50 {ms(pct(page, 50))}, "
            f"p99 {ms(pct(page, 99))} (goal <= 5 ms)"
        )
        synthetic(engine, s, ids, args.runs)


def synthetic(engine: object, s: object, ids: list[str], runs: int) -> None:
    """100k rules over 20 catalogs, stored with the importer's own path (`import_parsed`)."""
    from sqlmodel import Session

    from app.attack import service as attack_service
    from app.catalog import service as catalog_service
    from app.catalog.base import ParsedCatalog, ParsedRule
    from app.coverage import service as coverage_service

    rng = random.Random(7)
    statuses = ["stable", "test", "experimental", "deprecated", None]
    levels = ["critical", "high", "medium", "low", "informational", None]

    t = time.perf_counter()
    for n in range(20):
        rules = [
            ParsedRule(
                rule_id=f"S{n}-{i}",
                title=f"rule {i}",
                techniques=rng.sample(ids, k=rng.choice((1, 1, 2, 3))),
                status=rng.choice(statuses),
                severity=rng.choice(levels),
            )
            for i in range(5000)
        ]
        parsed = ParsedCatalog(format_id="canonical", rules=rules, name=f"synthetic-{n:02d}")
        catalog_service.import_parsed(engine, s, parsed=parsed, source_name="synthetic", sha256="-")  # type: ignore[arg-type]
    build = time.perf_counter() - t
    with Session(engine) as session:  # type: ignore[arg-type]
        release = attack_service.get_release(session)
        names = [f"synthetic-{n:02d}" for n in range(20)]
        scope = coverage_service.make_scope(session, release=release, catalogs=names)
        t = time.perf_counter()
        coverage_service.summary(session, scope=scope, weights=s.coverage)  # type: ignore[attr-defined]
        first = time.perf_counter() - t
        summ = timed_runs(
            lambda: coverage_service.summary(session, scope=scope, weights=s.coverage),  # type: ignore[attr-defined]
            max(5, runs // 3),
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"synthetic 100,000 rules in 20 catalogs (imported in {build:.1f} s):")
    print(
        f"  coverage summary: first call {ms(first)} (reads and weighs every mapping), then p50 "
        f"{ms(pct(summ, 50))} (goal <= 500 ms); peak RSS of this process {peak:.0f} MB "
        "(goal <= 500 MB)"
    )


if __name__ == "__main__":
    main()
