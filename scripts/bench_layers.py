"""Layer benchmark: p50 per layer kind on enterprise 18.1 with every shared catalog, SVG and XLSX.

Builds its own SQLite database under /tmp once (enterprise 17.1 for the diff and 18.1, the shared
catalogs and the shipped MaxPatrol catalog), warms the caches with one call per kind, then times
in-process service calls. Also writes docs/img/coverage-matrix.svg (the README picture).

    python scripts/bench_layers.py [--runs 31] [--db /tmp/kbmap-bench-layers/kbmap.sqlite]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlmodel import Session  # noqa: E402

from app.attack import service as attack_service  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.db import make_engine  # noqa: E402
from app.coverage import service as coverage_service  # noqa: E402
from app.layer import service as layer_service  # noqa: E402
from app.layer.service import LayerRequest  # noqa: E402
from app.models import init_db  # noqa: E402

SHARED = Path(os.environ.get("KBMAP_SHARED_DIR", ROOT.parent / "shared"))
CATALOGS = (
    ("sigma-attack18-rules.tar.gz", "sigma-attack18"),
    ("sigma-rules.tar.gz", "sigma"),
    ("open-xp-rules-rules.tar.gz", "open-xp-rules"),
)
REQUESTS: dict[str, tuple[LayerRequest, list[str]]] = {
    "coverage": (LayerRequest(kind="coverage"), []),
    "gaps": (LayerRequest(kind="gaps", collected=["Process Creation", "Command Execution"]), []),
    "threat": (LayerRequest(kind="threat"), ["G0016"]),
    "telemetry": (LayerRequest(kind="telemetry", collected=["Process Creation"]), []),
    "compare": (LayerRequest(kind="compare", a=["sigma"], b=["open-xp-rules"]), []),
    "diff": (LayerRequest(kind="diff", from_version="17.1"), []),
}


def build_db(settings: Settings) -> None:
    from app.attack.ingest import ingest_sources
    from app.catalog import service as catalog_service
    from app.catalog.source import open_source

    engine = make_engine(settings.database_url)
    init_db(engine)
    t = time.perf_counter()
    ingest_sources(
        engine,
        [str(SHARED / "attack" / f"enterprise-attack-{v}.json.gz") for v in ("17.1", "18.1")],
        limits=settings.limits,
    )
    for file, name in CATALOGS:
        source = open_source(SHARED / "catalogs" / file, settings.limits)
        catalog_service.import_catalog(
            engine, settings, source=source, name=name, domain="enterprise", version="18.1"
        )
    source = open_source(ROOT / "kb" / "catalogs" / "maxpatrol-siem.yaml", settings.limits)
    catalog_service.import_catalog(engine, settings, source=source)
    engine.dispose()
    print(f"built {settings.database_url} in {time.perf_counter() - t:.1f} s")


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=31)
    ap.add_argument("--db", default="/tmp/kbmap-bench-layers/kbmap.sqlite")
    ap.add_argument("--picture", default=str(ROOT / "docs" / "img" / "coverage-matrix.svg"))
    args = ap.parse_args()
    settings = Settings(database_url=f"sqlite:///{args.db}", environment="test")
    if not Path(args.db).exists():
        Path(args.db).parent.mkdir(parents=True, exist_ok=True)  # a new machine has no folder
        build_db(settings)
    engine = make_engine(settings.database_url)
    w = settings.coverage
    print(f"enterprise 18.1, all catalogs, {args.runs} runs after one warm-up call per kind")
    print(f"{'kind':<10} {'first':>9} {'p50':>9} {'p95':>9} {'entries':>8} {'bytes':>9}")
    with Session(engine) as session:
        release = attack_service.get_release(session, domain="enterprise", version="18.1")
        for kind, (req, threat) in REQUESTS.items():
            scope = coverage_service.make_scope(session, release=release, threat=threat)

            def call(req: LayerRequest = req, scope: coverage_service.Scope = scope) -> bytes:
                return layer_service.layer_file(session, scope=scope, req=req, weights=w)[0]

            first = timed(call, 1)[0]
            runs = sorted(timed(call, args.runs))
            layer = layer_service.build_layer(session, scope=scope, req=req, weights=w)
            p95 = runs[min(len(runs) - 1, round(0.95 * (len(runs) - 1)))]
            print(
                f"{kind:<10} {first * 1000:>7.1f}ms {statistics.median(runs) * 1000:>7.1f}ms "
                f"{p95 * 1000:>7.1f}ms {len(layer.techniques):>8} {len(call()):>9}"
            )
        scope = coverage_service.make_scope(session, release=release)
        req = REQUESTS["coverage"][0]
        for fmt in ("svg", "xlsx"):

            def draw(fmt: str = fmt) -> bytes:
                return layer_service.render_layer(
                    session,
                    scope=scope,
                    req=req,
                    weights=w,
                    fmt=fmt,  # type: ignore[arg-type]
                )[0]

            t = sorted(timed(draw, 5))
            print(
                f"coverage.{fmt:<5} p50 {statistics.median(t) * 1000:.1f}ms ({len(draw())} bytes)"
            )
        picture = Path(args.picture)
        picture.parent.mkdir(parents=True, exist_ok=True)
        svg = layer_service.render_layer(session, scope=scope, req=req, weights=w, fmt="svg")[0]
        picture.write_bytes(svg)
        print(f"wrote {picture}")
    engine.dispose()


if __name__ == "__main__":
    main()
