"""Benchmark (issue: environments): effective coverage summary and "what to collect next".

Builds a SQLite database under /tmp from enterprise ATT&CK 18.1, the shared catalogs
(sigma-attack18, sigma, open-xp-rules, and the shipped maxpatrol-siem validated against 18.1)
and the DeTT&CT endpoints sample (../shared/peers/dettect/data-sources-endpoints.yaml), then
prints, in-process (the first call, cold, then p50/p95 of repeated calls once the per-release,
per-catalog and per-environment caches are built, as a running service answers):
- effective coverage summary (make_scope with the environment + coverage summary), shared
  catalogs and the DeTT&CT sample (goal p50 <= 50 ms), and "collect next" (goal p50 <= 200 ms);
- the same two through the HTTP API once (TestClient on create_app): the routes' own cost;
- 100,000 synthetic Sigma-like rules in one catalog (product/category log sources from
  kb/mappings/log-sources.yaml's sigma categories, the platforms Sigma derives from the product,
  techniques spread over 18.1) and a generated environment of 200 systems (kbmap YAML, varied
  platforms, random subsets of the 18.1 data components, some with quality): summary (goal
  p50 <= 500 ms) and "collect next" (goal p50 <= 200 ms).
A figure over its goal is followed by a cProfile of a few calls (top 15 by cumulative time);
--profile prints it for every figure. Fixed random seed (--seed).
Run: python scripts/bench_environment.py [--runs 30] [--db /tmp/kbmap-env.sqlite (kept, reused)]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts._bench import ATTACK, CATALOGS, ROOT, SHARED, ms, pct, timed_runs

BUNDLE = ATTACK / "enterprise-attack-18.1.json.gz"
DETTECT = SHARED / "peers" / "dettect" / "data-sources-endpoints.yaml"
SHARED_CATALOGS = (
    (CATALOGS / "sigma-attack18-rules.tar.gz", "sigma-attack18"),
    (CATALOGS / "sigma-rules.tar.gz", "sigma"),
    (CATALOGS / "open-xp-rules-rules.tar.gz", "open-xp-rules"),
    (ROOT / "kb" / "catalogs" / "maxpatrol-siem.yaml", "maxpatrol-siem"),
)
SHARED_NAMES = [name for _, name in SHARED_CATALOGS]
DETTECT_ENV = "Data-sources-sample"  # the sample's `name`, slugged (its default)
SYNTHETIC = "synthetic-100k"
SYNTHETIC_ENV = "synthetic-200"
# ATT&CK 18.1 enterprise platforms a synthetic system runs (weights: mostly endpoints)
SYSTEM_PLATFORMS = (
    ["Windows"] * 6
    + ["Linux"] * 4
    + ["macOS"] * 2
    + ["IaaS", "SaaS", "Office Suite", "Identity Provider", "Network Devices"]
    + ["Containers", "ESXi"]
)
# products a Sigma rule of a "*/category" log source names (None: no product)
ANY_PRODUCTS = ["windows", "linux", "macos", "aws", "azure", "gcp", "okta", "m365", "zeek", None]
QUALITY = ("device_completeness", "data_field_completeness", "timeliness", "consistency")


def build_db(path: Path) -> None:
    """Enterprise 18.1, every shared catalog (validated against 18.1), the DeTT&CT sample."""
    from app.attack.ingest import ingest_sources
    from app.catalog import service as catalog_service
    from app.catalog.source import open_source
    from app.core.db import make_engine
    from app.environment import service as environment_service
    from app.models import init_db

    s = settings_for(path)
    engine = make_engine(s.database_url)
    init_db(engine)
    t = time.perf_counter()
    ingest_sources(engine, [str(BUNDLE)], limits=s.limits)
    for file, name in SHARED_CATALOGS:
        source = open_source(file, s.limits)
        catalog_service.import_catalog(
            engine, s, source=source, name=name, domain="enterprise", version="18.1"
        )
    environment_service.import_environment(
        engine, s, file_name=DETTECT.name, data=DETTECT.read_bytes(), version="18.1"
    )
    engine.dispose()
    print(f"built {path} in {time.perf_counter() - t:.1f} s")


def settings_for(path: Path) -> Any:
    from app.core.config import Settings

    return Settings(database_url=f"sqlite:///{path}", environment="test")


class Bench:
    """One database's figures: cold call, warm p50/p95 against a goal, a profile when missed."""

    def __init__(self, path: Path, runs: int, profile: bool) -> None:
        from app.core.db import make_engine

        self.settings = settings_for(path)
        self.engine = make_engine(self.settings.database_url)
        self.runs = runs
        self.profile = profile

    def summary(self, catalogs: list[str], env: str | None) -> Callable[[], object]:
        """As the route does: resolve the scope (environment included), then sum up."""
        from app.coverage import service as coverage_service

        def call(session: Any) -> object:
            scope = self._scope(session, catalogs, env)
            return coverage_service.summary(session, scope=scope, weights=self.settings.coverage)

        return self._bound(call)

    def collect_next(self, catalogs: list[str], env: str) -> Callable[[], object]:
        from app.coverage import service as coverage_service

        def call(session: Any) -> object:
            scope = self._scope(session, catalogs, env)
            w = self.settings.coverage
            return coverage_service.collect_next(session, scope=scope, weights=w, limit=20)

        return self._bound(call)

    def _scope(self, session: Any, catalogs: list[str], env: str | None) -> Any:
        from app.attack import service as attack_service
        from app.coverage import service as coverage_service

        release = attack_service.get_release(session, domain="enterprise", version="18.1")
        return coverage_service.make_scope(
            session,
            release=release,
            catalogs=catalogs,
            environment=env,
            kb_dir=self.settings.kb_dir,
        )

    def _bound(self, call: Callable[[Any], object]) -> Callable[[], object]:
        """A read session per call, on one snapshot, as each request gets one."""
        from app.core.db import read_session

        def once() -> object:
            with read_session(self.engine) as session:
                return call(session)

        return once

    def figure(
        self, label: str, fn: Callable[[], object], goal_ms: float | None, runs: int
    ) -> object:
        t = time.perf_counter()
        result = fn()
        first = time.perf_counter() - t
        times = timed_runs(fn, runs)
        p50 = pct(times, 50)
        missed = goal_ms is not None and p50 * 1000 > goal_ms
        goal = "no goal: the reference" if goal_ms is None else f"goal p50 <= {goal_ms:.0f} ms"
        print(
            f"  {label}: first call {ms(first)}, then {runs} runs p50 {ms(p50)}, "
            f"p95 {ms(pct(times, 95))} ({goal}){' MISSED' if missed else ''}"
        )
        if missed or self.profile:
            print_profile(fn)
        return result


def print_profile(fn: Callable[[], object], calls: int = 3) -> None:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(15)
    body = out.getvalue().strip().splitlines()
    start = next((i for i, line in enumerate(body) if "ncalls" in line), 0)
    print(f"    cProfile of {calls} calls, top 15 by cumulative time:")
    for line in body[start:]:
        print(f"    {line}")


def shared_case(b: Bench) -> None:
    from sqlmodel import Session

    from app.catalog import service as catalog_service
    from app.coverage.models import CoverageSummary

    with Session(b.engine) as session:
        listed = catalog_service.list_catalogs(session)
        rules = sum(c.rule_count for c in listed if c.name in SHARED_NAMES)
    print(f"shared catalogs ({rules} rules), enterprise 18.1, DeTT&CT endpoints sample:")
    b.figure("summary without environment", b.summary(SHARED_NAMES, None), None, b.runs)
    summ = b.figure("effective summary", b.summary(SHARED_NAMES, DETTECT_ENV), 50, b.runs)
    assert isinstance(summ, CoverageSummary) and summ.effective is not None
    print(f"    states (all techniques): {summ.effective.all}")
    nxt: Any = b.figure("collect next", b.collect_next(SHARED_NAMES, DETTECT_ENV), 200, b.runs)
    print(f"    {nxt.total} candidates; top: {candidate(nxt.items[0]) if nxt.items else '-'}")


def candidate(o: Any) -> str:
    return (
        f"{o.system} / {o.data_component}: +{o.techniques_gained} techniques, "
        f"{o.rules_unlocked} rules"
    )


def http_case(path: Path, runs: int) -> None:
    """The same questions through the API (TestClient): routing, dependencies, JSON."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    catalogs = "&".join(f"catalog={n}" for n in SHARED_NAMES)
    urls = (
        ("GET /api/v1/coverage?environment=", f"/api/v1/coverage?version=18.1&{catalogs}", 50),
        (
            "GET /api/v1/environments/{name}/next",
            f"/api/v1/environments/{DETTECT_ENV}/next?version=18.1&{catalogs}",
            200,
        ),
    )
    print("the same through the HTTP API (TestClient on create_app):")
    with TestClient(create_app(settings_for(path))) as client:
        for label, url, goal in urls:
            full = url if "next" in url else f"{url}&environment={DETTECT_ENV}"
            times = [http_get(client, full) for _ in range(runs + 1)]
            print(
                f"  {label}: first request {ms(times[0])}, then {runs} runs p50 "
                f"{ms(pct(times[1:], 50))}, p95 {ms(pct(times[1:], 95))} "
                f"(in-process goal p50 <= {goal} ms)"
            )


def http_get(client: Any, url: str) -> float:
    t = time.perf_counter()
    r = client.get(url)
    took = time.perf_counter() - t
    assert r.status_code == 200, f"{url}: {r.status_code} {r.text[:300]}"
    return took


def synthetic_rules(rng: random.Random, ids: list[str], n: int) -> list[Any]:
    """Sigma-like rules: one product/category log source, one to three techniques among those
    it detects (each technique is given one to three categories, so a technique's rules read
    the same few logs, as real ones do), the platforms Sigma derives from the product."""
    from app.catalog.base import ParsedRule
    from app.catalog.formats.sigma import PLATFORMS

    categories = sigma_categories()
    by_category: dict[tuple[str, str], list[str]] = {c: [] for c in categories}
    for tid in ids:
        for c in rng.sample(categories, k=rng.randint(1, 3)):
            by_category[c].append(tid)
    used = [c for c in categories if by_category[c]]
    rules = []
    for i in range(n):
        category = rng.choice(used)
        sources = [log_source(rng, category)]
        home = by_category[category]
        techniques = rng.sample(home, k=min(len(home), rng.choice((1, 1, 2, 3))))
        platforms = sorted({PLATFORMS.get(p, p) for e in sources if (p := e.get("product"))})
        rules.append(
            ParsedRule(
                rule_id=f"syn-{i}",
                title=f"synthetic rule {i}",
                techniques=techniques,
                log_sources=sources,
                platforms=platforms,
                status=rng.choice(("stable", "test", "experimental")),
                severity=rng.choice(("critical", "high", "medium", "low")),
            )
        )
    return rules


def sigma_categories() -> list[tuple[str, str]]:
    """(product, category) keys of log-sources.yaml's sigma categories ("*": any product)."""
    keys = log_source_doc()["sigma"]["categories"]
    return [(key.split("/", 1)[0], key.split("/", 1)[1]) for key in keys]


@functools.cache
def log_source_doc() -> dict[str, Any]:
    """kb/mappings/log-sources.yaml as plain YAML: its sigma categories and the 18.1 components."""
    import yaml

    path = ROOT / "kb" / "mappings" / "log-sources.yaml"
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def log_source(rng: random.Random, key: tuple[str, str]) -> dict[str, str]:
    product, category = key
    if product == "*":
        any_product = rng.choice(ANY_PRODUCTS)
        return {"category": category} | ({"product": any_product} if any_product else {})
    return {"product": product, "category": category}


def synthetic_environment(rng: random.Random, components: list[str], systems: int) -> bytes:
    """kbmap YAML: systems on one or two platforms, each collecting 5-40 data components out of
    the half of them the organisation collects anywhere (so onboarding has something to offer),
    a third of the sources with DeTT&CT quality scores."""
    import yaml

    pool = rng.sample(components, k=len(components) // 2)
    doc: dict[str, Any] = {"name": SYNTHETIC_ENV, "domain": "enterprise", "systems": []}
    for n in range(systems):
        platforms = sorted(set(rng.sample(SYSTEM_PLATFORMS, k=rng.choice((1, 1, 1, 2)))))
        sources = []
        for dc in rng.sample(pool, k=rng.randint(5, 40)):
            entry: dict[str, Any] = {"data_component": dc}
            if rng.random() < 0.33:
                entry["quality"] = {q: rng.randint(1, 5) for q in QUALITY}
            sources.append(entry)
        name = f"system-{n:03d} ({'/'.join(platforms)})"
        doc["systems"].append({"name": name, "platforms": platforms, "log_sources": sources})
    return yaml.safe_dump(doc, sort_keys=False).encode()


def synthetic_case(b: Bench, seed: int, rules: int, systems: int) -> None:
    """Figures of the synthetic catalog and environment, stored by the importers' own paths."""
    build, env_build, size = build_synthetic(b, seed, rules, systems)
    print(
        f"synthetic {rules:,} rules in one catalog (built and imported in {build:.1f} s), "
        f"environment of {systems} systems ({size / 1024:.0f} KiB of YAML, imported in "
        f"{env_build:.1f} s):"
    )
    runs = max(5, b.runs // 3)
    b.figure("summary without environment", b.summary([SYNTHETIC], None), None, runs)
    summ: Any = b.figure("effective summary", b.summary([SYNTHETIC], SYNTHETIC_ENV), 500, runs)
    print(f"    states (all techniques): {summ.effective.all}")
    nxt: Any = b.figure("collect next", b.collect_next([SYNTHETIC], SYNTHETIC_ENV), 200, runs)
    print(f"    {nxt.total} candidates; top: {candidate(nxt.items[0]) if nxt.items else '-'}")


def build_synthetic(b: Bench, seed: int, rules: int, systems: int) -> tuple[float, float, int]:
    """import_parsed for the rules, import_environment for the YAML: (seconds, seconds, bytes)."""
    from sqlmodel import Session

    from app.attack import service as attack_service
    from app.catalog import service as catalog_service
    from app.catalog.base import ParsedCatalog
    from app.environment import service as environment_service

    rng = random.Random(seed)
    with Session(b.engine) as session:
        release = attack_service.get_release(session, domain="enterprise", version="18.1")
        ids = attack_service.technique_index(session, release=release).active_ids()
    t = time.perf_counter()
    made = synthetic_rules(rng, ids, rules)
    parsed = ParsedCatalog(format_id="sigma", rules=made, name=SYNTHETIC)
    catalog_service.import_parsed(
        b.engine, b.settings, parsed=parsed, source_name="synthetic", sha256="-", version="18.1"
    )
    build = time.perf_counter() - t
    t = time.perf_counter()
    data = synthetic_environment(rng, log_source_doc()["components"], systems)
    environment_service.import_environment(
        b.engine, b.settings, file_name=f"{SYNTHETIC_ENV}.yaml", data=data, version="18.1"
    )
    return build, time.perf_counter() - t, len(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--rules", type=int, default=100_000)
    ap.add_argument("--systems", type=int, default=200)
    ap.add_argument("--profile", action="store_true", help="profile every figure, not only misses")
    ap.add_argument("--db", type=Path, help="keep the database here and reuse it when present")
    args = ap.parse_args()
    if args.db:
        if not args.db.exists():
            build_db(args.db)
        run(args.db, args)
        return
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = Path(tmp) / "kbmap-env.sqlite"
        build_db(path)
        run(path, args)


def run(path: Path, args: argparse.Namespace) -> None:
    b = Bench(path, args.runs, args.profile)
    shared_case(b)
    http_case(path, max(5, args.runs // 3))
    synthetic_case(b, args.seed, args.rules, args.systems)


if __name__ == "__main__":
    main()
