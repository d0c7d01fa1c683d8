"""Load test (issue: guard the service): mixed reads against uvicorn while a catalog re-imports.

For each backend (SQLite file under /tmp, and a throwaway PostgreSQL database it creates and
drops) it builds a database with enterprise ATT&CK 18.1 and the shared catalogs, starts
`uvicorn app.main:create_app --factory --workers 2` on a free loopback port, and then for
--duration seconds:
- N concurrent clients (httpx AsyncClient) send a mix: the technique page of a random technique
  70%, /api/v1/coverage 10%, /api/v1/gaps?groups=G0016 10%, /api/v1/rules?technique=T1059.001 10%;
- meanwhile one client re-imports the open-xp-rules catalog through the API (write token) in a
  loop, so every read races a replace;
- then, when `wrk` is installed, a pure technique-page run with wrk (random ids; no re-import
  unless --wrk-reimport), since a Python load generator on the same two cores is itself CPU-bound.
It prints total requests, requests/s overall and for technique pages, p50/p99 latency, errors
(goal: none) and how busy the load generator was, then stops the server and drops the database.

Run: python scripts/bench_load.py [--backend sqlite|postgresql|both] [--duration 60]
     [--concurrency 50] [--workers 2] [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts._bench import ATTACK, CATALOGS, ROOT, pct

BUNDLE = ATTACK / "enterprise-attack-18.1.json.gz"
SHARED_CATALOGS = (
    (CATALOGS / "sigma-attack18-rules.tar.gz", "sigma-attack18"),
    (CATALOGS / "sigma-rules.tar.gz", "sigma"),
    (CATALOGS / "open-xp-rules-rules.tar.gz", "open-xp-rules"),
    (ROOT / "kb" / "catalogs" / "maxpatrol-siem.yaml", "maxpatrol-siem"),
)
REIMPORT = CATALOGS / "open-xp-rules-rules.tar.gz"
MIX = (("technique", 70), ("coverage", 10), ("gaps", 10), ("rules", 10))
FIXED = {
    "coverage": "/api/v1/coverage",
    "gaps": "/api/v1/gaps?groups=G0016",
    "rules": "/api/v1/rules?technique=T1059.001",
}
TOKEN_KEY = secrets.token_hex(16)  # the builder and the server hash tokens with the same key


# --- database ------------------------------------------------------------------------------------


def build(url: str) -> str:
    """Enterprise 18.1 and every catalog (validated against 18.1); returns a write token."""
    from app.attack.ingest import ingest_sources
    from app.auth.service import create_token
    from app.catalog import service as catalog_service
    from app.catalog.source import open_source
    from app.core.config import Settings
    from app.core.db import make_engine
    from app.models import init_db

    settings = Settings(database_url=url, environment="test", token_key=TOKEN_KEY)
    engine = make_engine(url)
    init_db(engine)
    t = time.perf_counter()
    ingest_sources(engine, [str(BUNDLE)], limits=settings.limits)
    for file, name in SHARED_CATALOGS:
        catalog_service.import_catalog(
            engine,
            settings,
            source=open_source(file, settings.limits),
            name=name,
            domain="enterprise",
            version="18.1",
        )
    _, token = create_token(engine, settings, name="bench-load", scopes=["write"])
    engine.dispose()
    print(f"  built the database in {time.perf_counter() - t:.1f} s")
    return token


class PgDatabase:
    """A throwaway database on the PostgreSQL server, dropped on exit."""

    def __init__(self, server_url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.server = make_url(server_url)
        self.admin = create_engine(self.server, isolation_level="AUTOCOMMIT")
        self.name = f"kbmap_load_{uuid.uuid4().hex[:10]}"

    def __enter__(self) -> str:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        return self.server.set(database=self.name).render_as_string(hide_password=False)

    def __exit__(self, *_: object) -> None:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


# --- the server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """uvicorn with N workers on a loopback port; stopped (its process group) on exit."""

    def __init__(self, url: str, workers: int, log: Path) -> None:
        self.url, self.workers, self.log = url, workers, log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        env = {
            **os.environ,
            "KBMAP_DATABASE_URL": self.url,
            "KBMAP_TOKEN_KEY": TOKEN_KEY,
            "KBMAP_HOST": "127.0.0.1",
        }
        args = [
            sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
            "--workers", str(self.workers), "--host", "127.0.0.1", "--port", str(self.port),
            "--no-access-log", "--timeout-keep-alive", "5", "--log-level", "warning",
        ]  # fmt: skip
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                args,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"uvicorn did not come up; see {self.log}")
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        """CPU time of the server's process group (master and workers)."""
        assert self.proc is not None
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == self.proc.pid:  # pgrp
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *_: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# --- load ----------------------------------------------------------------------------------------


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    reimports: list[float] = field(default_factory=list)
    reimport_errors: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0


def technique_ids(base: str) -> list[str]:
    ids: list[str] = []
    offset = 0
    while True:
        page = httpx.get(
            f"{base}/api/v1/techniques", params={"limit": 1000, "offset": offset}, timeout=60
        ).json()
        ids += [t["id"] for t in page["items"]]
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return ids


def _error(kind: str, status: int | None, exc: BaseException | None, text: str = "") -> str:
    if exc is not None:
        return f"{kind}: {type(exc).__name__}: {exc}"[:160]
    return f"{kind}: HTTP {status} {text[:120]}"


async def reimport_loop(base: str, token: str, stop: asyncio.Event, res: Results) -> None:
    data = REIMPORT.read_bytes()
    form = {"name": "open-xp-rules", "domain": "enterprise", "version": "18.1"}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=120, headers=headers) as client:
        while not stop.is_set():
            t = time.perf_counter()
            try:
                r = await client.post(
                    "/api/v1/catalogs", files={"file": (REIMPORT.name, data)}, data=form
                )
                if r.status_code != 201:
                    res.reimport_errors[_error("re-import", r.status_code, None, r.text)] += 1
            except httpx.HTTPError as exc:
                res.reimport_errors[_error("re-import", None, exc)] += 1
            res.reimports.append(time.perf_counter() - t)


async def reader(
    client: httpx.AsyncClient, ids: list[str], deadline: float, res: Results, rng: random.Random
) -> None:
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    while time.perf_counter() < deadline:
        kind = rng.choices(kinds, weights)[0]
        url = f"/api/v1/techniques/{rng.choice(ids)}" if kind == "technique" else FIXED[kind]
        t = time.perf_counter()
        try:
            r = await client.get(url)
            await r.aread()
            if r.status_code != 200:
                res.errors[_error(kind, r.status_code, None, r.text)] += 1
                continue
        except httpx.HTTPError as exc:
            res.errors[_error(kind, None, exc)] += 1
            continue
        res.latencies[kind].append(time.perf_counter() - t)


async def mixed_load(
    base: str, token: str, ids: list[str], duration: float, concurrency: int
) -> Results:
    res = Results()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        for kind in ("technique", *FIXED):  # warm the caches of each worker
            for _ in range(4):
                url = f"/api/v1/techniques/{ids[0]}" if kind == "technique" else FIXED[kind]
                await client.get(url)
        writer = asyncio.create_task(reimport_loop(base, token, stop, res))
        start = time.perf_counter()
        deadline = start + duration
        rngs = [random.Random(i) for i in range(concurrency)]
        await asyncio.gather(
            *(reader(client, ids, deadline, res, rngs[i]) for i in range(concurrency))
        )
        res.wall = time.perf_counter() - start
        stop.set()
        await writer
    return res


WRK_SCRIPT = """
local ids = {%s}
local n = 0
setup = function(thread) n = n + 1; thread:set("seed", n) end
init = function(args) math.randomseed(os.time() + seed * 7919) end
request = function()
  return wrk.format("GET", "/api/v1/techniques/" .. ids[math.random(#ids)])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %%d %%d %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


async def wrk_run(
    base: str, token: str, ids: list[str], duration: float, concurrency: int, reimport: bool
) -> dict[str, float] | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(WRK_SCRIPT % ", ".join(f'"{i}"' for i in ids))
        script = fh.name
    res = Results()
    stop = asyncio.Event()
    if not reimport:
        stop.set()
    writer = asyncio.create_task(reimport_loop(base, token, stop, res))
    proc = await asyncio.create_subprocess_exec(
        wrk, "-t2", f"-c{concurrency}", f"-d{int(duration)}s", "--timeout", "30s",
        "-s", script, base,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    stop.set()
    await writer
    os.unlink(script)
    line = next((ln for ln in out.decode().splitlines() if ln.startswith("WRK ")), None)
    if line is None:
        print(out.decode())
        return None
    total, micros, conn, read, write, status, timeout, p50, p99 = map(int, line.split()[1:])
    return {
        "requests": total,
        "seconds": micros / 1e6,
        "errors": conn + read + write + status + timeout,
        "p50": p50 / 1e6,
        "p99": p99 / 1e6,
        "reimports": len(res.reimports),
        "reimport_errors": sum(res.reimport_errors.values()),
    }


# --- report --------------------------------------------------------------------------------------


def report(label: str, res: Results, gen_cpu: float, server_cpu: float) -> bool:
    everything = [v for values in res.latencies.values() for v in values]
    total = len(everything) + sum(res.errors.values())
    tech = res.latencies["technique"]
    print(f"  mixed load ({label}): {total} requests in {res.wall:.1f} s")
    print(
        f"    overall {total / res.wall:,.0f} req/s, p50 {pct(everything, 50) * 1000:.1f} ms, "
        f"p99 {pct(everything, 99) * 1000:.1f} ms; errors {sum(res.errors.values())}"
    )
    for kind, _ in MIX:
        values = res.latencies[kind]
        if values:
            print(
                f"    {kind:<10} {len(values):>7} ok  {len(values) / res.wall:>7,.0f} req/s  "
                f"p50 {pct(values, 50) * 1000:7.1f} ms  p99 {pct(values, 99) * 1000:7.1f} ms"
            )
    for message, n in res.errors.most_common(5):
        print(f"    error x{n}: {message}")
    if res.reimports:
        print(
            f"    catalog re-imports during the run: {len(res.reimports)} "
            f"(p50 {pct(res.reimports, 50):.2f} s), errors {sum(res.reimport_errors.values())}"
        )
    for message, n in res.reimport_errors.most_common(3):
        print(f"    re-import error x{n}: {message}")
    print(
        f"    CPU: load generator {gen_cpu / res.wall:.2f} cores, "
        f"server {server_cpu / res.wall:.2f} cores (of {os.cpu_count()}); "
        f"technique pages {len(tech) / res.wall:,.0f} req/s"
    )
    return not res.errors and not res.reimport_errors


def run_backend(label: str, url: str, args: argparse.Namespace) -> bool:
    print(f"{label}:")
    token = build(url)
    log = Path(tempfile.gettempdir()) / f"kbmap-load-{label}.log"
    with Server(url, args.workers, log) as server:
        ids = technique_ids(server.base)
        print(
            f"  uvicorn --workers {args.workers} on {server.base}; {len(ids)} techniques; "
            f"{args.concurrency} clients for {args.duration:.0f} s"
        )
        cpu0, srv0 = resource.getrusage(resource.RUSAGE_SELF), server.cpu_seconds()
        res = asyncio.run(mixed_load(server.base, token, ids, args.duration, args.concurrency))
        cpu1, srv1 = resource.getrusage(resource.RUSAGE_SELF), server.cpu_seconds()
        gen = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        ok = report(label, res, gen, srv1 - srv0)
        if not args.no_wrk:
            w = asyncio.run(
                wrk_run(server.base, token, ids, args.duration, args.concurrency, args.wrk_reimport)
            )
            if w is None:
                print("  wrk: not installed (apt-get install wrk), technique-page run skipped")
            else:
                print(
                    f"  wrk technique pages ({label}): {w['requests']:.0f} requests in "
                    f"{w['seconds']:.1f} s = {w['requests'] / w['seconds']:,.0f} req/s, "
                    f"p50 {w['p50'] * 1000:.1f} ms, p99 {w['p99'] * 1000:.1f} ms, "
                    f"errors {w['errors']:.0f}; re-imports {w['reimports']:.0f} "
                    f"(errors {w['reimport_errors']:.0f})"
                )
                ok = ok and not w["errors"] and not w["reimport_errors"]
        errors_in_log = [
            ln for ln in log.read_text(errors="replace").splitlines() if "Traceback" in ln
        ]
        if errors_in_log:
            print(f"  server log {log}: {len(errors_in_log)} tracebacks")
            ok = False
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per run")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "KBMAP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="PostgreSQL server (a throwaway database is created on it and dropped)",
    )
    parser.add_argument("--no-wrk", action="store_true", help="skip the wrk technique-page run")
    parser.add_argument(
        "--wrk-reimport", action="store_true", help="keep re-importing during the wrk run too"
    )
    args = parser.parse_args()
    ok = True
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="kbmap-load-") as tmp:
            ok = run_backend("sqlite", f"sqlite:///{Path(tmp) / 'kbmap.sqlite'}", args) and ok
    if args.backend in ("postgresql", "both"):
        with PgDatabase(args.pg_url) as url:
            ok = run_backend("postgresql", url, args) and ok
    print("result: no errors" if ok else "result: ERRORS (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
