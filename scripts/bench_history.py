"""Benchmark (issue #16: coverage history): a snapshot's cost, its bytes, and the reads.

No peer: none of the tools kbmap is measured against keeps a coverage history, so each figure
stands against its goal alone.

Builds a SQLite database under /tmp holding enterprise ATT&CK 18.1 and copies it for each part:
1. Snapshot cost on a catalog import: sigma-attack18 re-imported (a replace, the same archive)
   through `catalog_service.import_catalog`, in turns on an engine with the history recorder
   attached (`history_service.attach`) and on one without, over the same file: p50 of each and the
   overhead (goal <= 10 %). The recorder's own part (`HistoryRecorder.before` + `.after`, timed
   around the calls) is printed too, since the noise of a 1.5 s import can hide it. Each case
   twice: release caches cold (every import empties the engine's caches, and a CLI import is a
   fresh process) and warmed by a coverage read before each import (a server between imports).
   Then the same with the DeTT&CT endpoints sample imported as an environment: every catalog
   change recomputes the domain's environments as well.
2. Bytes per snapshot on the shared catalogs: sigma-attack18, sigma and open-xp-rules imported one
   after the other, sigma-attack18 replaced by a copy with a few rules removed (rebuilt from its
   tarball), sigma deleted. After each step: the snapshot's rows (scope rows, delta rows per
   scope) and the bytes the history tables grew by (SQLite's `dbstat`, before/after), against the
   bytes a full copy of each recomputed scope would take (its covered techniques, and the whole
   matrix), at the measured bytes of a `coverage_current` row.
3. A year of daily changes: sigma-attack18 imported (its snapshot moved back 366 days), then 365
   snapshots one a day, each flipping 1-10 seeded random techniques in `all:enterprise` and
   `catalog:sigma-attack18`, written by `app.history.writing` (the recorder's own writer, one
   transaction a day). Then GET /api/v1/coverage/history (unfiltered, tactic=execution,
   platform=Windows) and GET /api/v1/coverage/changes (since the first snapshot, since 30 days
   ago) through a TestClient on create_app (read_auth open): the first request, then p50/p95
   (goal p50 <= 100 ms each); then the same question asked of the service in-process (the gap is
   the route's: validation and JSON).
A figure over its goal is followed by a cProfile (top 20 by cumulative time) of the recorder's
calls or of the service call; --profile prints one for every figure. The load average is printed
with each part: the import figures move with it.
Run: python scripts/bench_history.py [--imports 7] [--runs 30] [--seed 16] [--removed 10]
     [--profile] [--parts 1,2,3] [--dir DIR (build and keep the databases there)]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts._bench import ATTACK, CATALOGS, SHARED, ms, pct

BUNDLE = ATTACK / "enterprise-attack-18.1.json.gz"
DETTECT = SHARED / "peers" / "dettect" / "data-sources-endpoints.yaml"
MAIN, MAIN_FILE = "sigma-attack18", CATALOGS / "sigma-attack18-rules.tar.gz"
SHARED_CATALOGS = (
    (MAIN_FILE, MAIN),
    (CATALOGS / "sigma-rules.tar.gz", "sigma"),
    (CATALOGS / "open-xp-rules-rules.tar.gz", "open-xp-rules"),
)
DELETED = "sigma"
RELEASE = "enterprise 18.1"
GOAL_OVERHEAD, GOAL_MS = 10.0, 100.0
SCORES = (0.25, 0.5, 0.75, 1.0)  # what a synthetic day gives a technique it covers


# --- databases ---------------------------------------------------------------------------------


def settings_for(path: Path) -> Any:
    from app.core.config import Settings

    return Settings(database_url=f"sqlite:///{path}", environment="test", read_auth="open")


def build_base(path: Path) -> None:
    """Enterprise 18.1 alone: each part starts from a copy, so none sees another's history."""
    from app.attack.ingest import ingest_sources
    from app.core.db import make_engine
    from app.models import init_db

    s = settings_for(path)
    engine = make_engine(s.database_url)
    init_db(engine)
    t = time.perf_counter()
    ingest_sources(engine, [str(BUNDLE)], limits=s.limits)
    engine.dispose()
    print(f"built {path} (enterprise 18.1) in {time.perf_counter() - t:.1f} s")


def copy_of(base: Path, name: str) -> Path:
    path = base.with_name(name)
    shutil.copyfile(base, path)
    return path


def engines(path: Path) -> tuple[Any, Any, Any]:
    """(settings, an engine without recorder, an engine with the recorder) on one file."""
    from app.core.db import make_engine
    from app.history import service as history_service

    s = settings_for(path)
    plain, recorded = make_engine(s.database_url), make_engine(s.database_url)
    history_service.attach(recorded, s)
    return s, plain, recorded


def import_file(engine: Any, s: Any, file: Path, name: str) -> float:
    """One `kbmap catalog import` in-process (read, parse, validate, write): its seconds."""
    from app.catalog import service as catalog_service
    from app.catalog.source import open_source

    t = time.perf_counter()
    catalog_service.import_catalog(
        engine,
        s,
        source=open_source(file, s.limits),
        name=name,
        domain="enterprise",
        version="18.1",
    )
    return time.perf_counter() - t


def import_dettect(engine: Any, s: Any) -> None:
    from app.environment import service as environment_service

    data = DETTECT.read_bytes()
    environment_service.import_environment(
        engine, s, file_name=DETTECT.name, data=data, version="18.1"
    )


def scalar(engine: Any, sql: str) -> Any:
    with engine.connect() as c:
        return c.exec_driver_sql(sql).scalar()


# --- 1. snapshot cost --------------------------------------------------------------------------


class RecorderClock:
    """`HistoryRecorder.before` and `.after` wrapped with a timer while in use: the recorder's own
    seconds in an import, apart from the import's noise."""

    def __init__(self) -> None:
        self.seconds = self.cpu = 0.0
        self.cpus: list[float] = []  # CPU seconds of each take(), which a busy machine keeps
        self.profiler: cProfile.Profile | None = None  # set: the calls are profiled too

    @contextmanager
    def installed(self) -> Iterator[RecorderClock]:
        from app.history.recording import HistoryRecorder

        saved = HistoryRecorder.before, HistoryRecorder.after
        HistoryRecorder.before = self._timed(saved[0])  # type: ignore[method-assign]
        HistoryRecorder.after = self._timed(saved[1])  # type: ignore[method-assign]
        try:
            yield self
        finally:
            HistoryRecorder.before, HistoryRecorder.after = saved  # type: ignore[method-assign]

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t, c = time.perf_counter(), time.process_time()
            if self.profiler:
                self.profiler.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                if self.profiler:
                    self.profiler.disable()
                self.seconds += time.perf_counter() - t
                self.cpu += time.process_time() - c

        return timed

    def take(self) -> float:
        took, self.seconds = self.seconds, 0.0
        self.cpus.append(self.cpu)
        self.cpu = 0.0
        return took


def snapshot_cost(base: Path, imports: int, profile: bool) -> None:
    print(
        f"\n1. snapshot cost on a catalog import: {MAIN} replaced {imports} times with the "
        "recorder and as many without, in turns, one SQLite file (goal: overhead <= 10 %)"
    )
    path = copy_of(base, "kbmap-history-cost.sqlite")
    s, plain, recorded = engines(path)
    clock = RecorderClock()
    with clock.installed():
        first = import_file(recorded, s, MAIN_FILE, MAIN)
        own = ms(clock.take())
        print(f"  first import, recorded (catalog_import): {first:.2f} s, recorder {own}")
        import_file(plain, s, MAIN_FILE, MAIN)  # warm both engines before the turns
        turns = Turns(s, plain, recorded, clock, profile)
        turns.run("catalogs only, cold release caches (each import empties them)", imports)
        turns.run(
            "catalogs only, release caches warmed by a read before each import", imports, True
        )
        import_dettect(recorded, s)
        clock.take()
        turns.run("with the DeTT&CT environment, cold release caches", imports)
        turns.run("with the DeTT&CT environment, warmed by a read", imports, True)


class Turns:
    """Replaces of the main catalog on both engines, timed, and the recorder's own part."""

    def __init__(
        self, s: Any, plain: Any, recorded: Any, clock: RecorderClock, profile: bool
    ) -> None:
        self.s, self.plain, self.recorded, self.clock = s, plain, recorded, clock
        self.profile = profile

    def run(self, label: str, n: int, warm: bool = False) -> None:
        """Pairs of replaces, the order alternating, so drift in the machine meets both sides.
        `warm`: a coverage read on the engine before each (untimed), as a server answers reads
        between two imports; else the release's caches are cold, as in a CLI import's process."""
        without: list[float] = []
        with_: list[float] = []
        own: list[float] = []
        self.clock.cpus.clear()
        for i in range(n):
            for engine in (
                (self.plain, self.recorded) if i % 2 == 0 else (self.recorded, self.plain)
            ):
                if warm:
                    warm_read(engine, self.s)
                took = import_file(engine, self.s, MAIN_FILE, MAIN)
                (with_ if engine is self.recorded else without).append(took)
            own.append(self.clock.take())
        missed = print_cost(label, without, with_, own, self.recorded)
        print(f"    recorder's CPU time p50 {ms(pct(self.clock.cpus, 50))}")
        if missed or self.profile:
            self.profiled(warm)

    def profiled(self, warm: bool, calls: int = 3) -> None:
        """cProfile of the recorder's own calls (before + after) in a few recorded replaces."""
        self.clock.profiler = cProfile.Profile()
        for _ in range(calls):
            if warm:
                warm_read(self.recorded, self.s)
            import_file(self.recorded, self.s, MAIN_FILE, MAIN)
        print_stats(self.clock.profiler, f"the recorder's calls in {calls} replaces")
        self.clock.profiler = None
        self.clock.take()


def warm_read(engine: Any, s: Any) -> None:
    """The coverage summary of every catalog (and of each environment): the release's facts,
    vocabulary and index built again after the last import emptied the engine's caches."""
    from app.core.db import read_session
    from app.coverage import service as coverage_service
    from app.environment import service as environment_service

    with read_session(engine) as session:
        envs = [e.name for e in environment_service.list_environments(session)]
        for env in [None, *envs]:
            scope = coverage_service.make_scope(session, environment=env, kb_dir=s.kb_dir)
            coverage_service.summary(session, scope=scope, weights=s.coverage)


def print_stats(prof: cProfile.Profile, what: str, top: int = 20) -> None:
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    body = out.getvalue().strip().splitlines()
    start = next((i for i, line in enumerate(body) if "ncalls" in line), 0)
    print(f"    cProfile of {what}, top {top} by cumulative time:")
    for line in body[start:]:
        print(f"    {line}")


def print_cost(
    label: str, without: list[float], with_: list[float], own: list[float], engine: Any
) -> bool:
    """The figures of one case; True when a goal was missed."""
    a, b, r = pct(without, 50), pct(with_, 50), pct(own, 50)
    over, share = (b - a) / a * 100, r / a * 100
    scopes = scalar(
        engine,
        "SELECT COUNT(*) FROM coverage_snapshot_scope WHERE snapshot_id = "
        "(SELECT MAX(id) FROM coverage_snapshot)",
    )
    deltas = scalar(
        engine,
        "SELECT COUNT(*) FROM coverage_delta WHERE snapshot_id = "
        "(SELECT MAX(id) FROM coverage_snapshot)",
    )
    print(f"  {label} (a replace recomputes {scopes} scopes; {deltas} deltas, the same rules):")
    print(f"    import without recorder p50 {a:.3f} s (runs {_list(without)})")
    print(f"    import with recorder    p50 {b:.3f} s (runs {_list(with_)})")
    print(f"    overhead {over:+.1f} %{_missed(over > GOAL_OVERHEAD)} (goal <= 10 %)")
    print(
        f"    recorder's own part (before + after) p50 {ms(r)} = {share:.1f} % of the import"
        f"{_missed(share > GOAL_OVERHEAD)} (runs {', '.join(f'{x * 1000:.0f}' for x in own)} ms)"
    )
    return over > GOAL_OVERHEAD or share > GOAL_OVERHEAD


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _missed(missed: bool) -> str:
    return " MISSED" if missed else ""


# --- 2. bytes per snapshot ---------------------------------------------------------------------


def history_bytes(engine: Any) -> dict[str, tuple[int, int]]:
    """Per history b-tree (table or index): (page bytes, payload bytes), from `dbstat`."""
    sql = (
        "SELECT name, SUM(pgsize), SUM(payload) FROM dbstat "
        "WHERE name LIKE '%coverage_snapshot%' OR name LIKE '%coverage_delta%' "
        "OR name LIKE '%coverage_current%' GROUP BY name"
    )
    with engine.connect() as c:
        return {str(n): (int(p), int(q)) for n, p, q in c.exec_driver_sql(sql)}


def split_bytes(stats: dict[str, tuple[int, int]]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(snapshot tables: coverage_snapshot, _scope, _delta and their indexes; current values)."""
    snap = [v for n, v in stats.items() if "current" not in n]
    cur = [v for n, v in stats.items() if "current" in n]
    return _sum(snap), _sum(cur)


def _sum(pairs: list[tuple[int, int]]) -> tuple[int, int]:
    return sum(p for p, _ in pairs), sum(q for _, q in pairs)


def storage(base: Path, seed: int, removed: int, work: Path) -> None:
    print(
        "\n2. bytes per snapshot on the shared catalogs (dbstat of the history tables, diffed "
        "around each step; a full copy = one row per technique per recomputed scope, at the "
        "measured bytes of a coverage_current row)"
    )
    path = copy_of(base, "kbmap-history-bytes.sqlite")
    s, _plain, engine = engines(path)
    matrix = active_techniques(engine)
    smaller, gone = without_rules(MAIN_FILE, work, seed, removed)
    steps: list[tuple[str, Callable[[], object]]] = [
        *[(f"import {n}", _importer(engine, s, f, n)) for f, n in SHARED_CATALOGS],
        (
            f"replace {MAIN} with {removed} rules removed ({', '.join(gone[:3])}, …)",
            _importer(engine, s, smaller, MAIN),
        ),
        (f"delete {DELETED}", lambda: _delete(engine, DELETED)),
    ]
    totals = [0, 0, 0]
    for label, step in steps:
        measure_step(engine, label, step, matrix, totals)
    print(
        f"  all {len(steps)} steps: snapshot tables +{totals[0]:,} B payload "
        f"(+{totals[1]:,} B pages); full copies of the recomputed scopes {totals[2]:,} B"
    )


def _importer(engine: Any, s: Any, file: Path, name: str) -> Callable[[], object]:
    return lambda: import_file(engine, s, file, name)


def _delete(engine: Any, name: str) -> None:
    from app.catalog import service as catalog_service

    catalog_service.delete_catalog(engine, name=name)


def active_techniques(engine: Any) -> int:
    from sqlmodel import Session

    from app.attack import service as attack_service

    with Session(engine) as session:
        release = attack_service.get_release(session, domain="enterprise", version="18.1")
        return len(attack_service.technique_index(session, release=release).active_ids())


def measure_step(
    engine: Any, label: str, step: Callable[[], object], matrix: int, totals: list[int]
) -> None:
    last = scalar(engine, "SELECT COALESCE(MAX(id), 0) FROM coverage_snapshot")
    (p0, q0), _ = split_bytes(history_bytes(engine))
    step()
    (p1, q1), (_, cq) = split_bytes(history_bytes(engine))
    rows = scalar(engine, "SELECT COUNT(*) FROM coverage_current") or 1
    per_row = cq / rows
    scopes = snapshot_scopes(engine, last)
    why = scalar(
        engine,
        f"SELECT COALESCE(SUM(LENGTH(reason)), 0) FROM coverage_delta WHERE snapshot_id > {last}",
    )
    deltas = sum(d for _, _, d in scopes)
    covered = sum(c for _, c, _ in scopes)
    full, whole = round(covered * per_row), round(len(scopes) * matrix * per_row)
    print(f"  {label}:")
    print("    scopes: " + "; ".join(f"{k} covered {c}, {d} deltas" for k, c, d in scopes))
    print(
        f"    rows: {len(scopes)} scope rows, {deltas} delta rows; history tables "
        f"+{q1 - q0:,} B payload (+{p1 - p0:,} B pages), of which reason text {why:,} B"
    )
    print(
        f"    a full copy: {covered} rows x {per_row:.0f} B = {full:,} B (whole matrix: "
        f"{len(scopes)} scopes x {matrix} techniques = {whole:,} B); "
        f"coverage_current now {rows} rows, {cq:,} B"
    )
    totals[0] += q1 - q0
    totals[1] += p1 - p0
    totals[2] += full


def snapshot_scopes(engine: Any, after_id: int) -> list[tuple[str, int, int]]:
    """(scope, covered, delta rows) of every snapshot written after `after_id`."""
    sql = (
        "SELECT s.scope, s.covered, (SELECT COUNT(*) FROM coverage_delta d "
        "WHERE d.snapshot_id = s.snapshot_id AND d.scope = s.scope) "
        f"FROM coverage_snapshot_scope s WHERE s.snapshot_id > {int(after_id)} ORDER BY s.id"
    )
    with engine.connect() as c:
        return [(str(k), int(n), int(d)) for k, n, d in c.exec_driver_sql(sql)]


def without_rules(tarball: Path, work: Path, seed: int, n: int) -> tuple[Path, list[str]]:
    """A copy of the tarball with `n` seeded-random rules that name ATT&CK techniques left out:
    the same catalog a week later, a few rules retired."""
    with tarfile.open(tarball) as src:
        members = [(m, src.extractfile(m).read() if m.isfile() else b"") for m in src]  # type: ignore[union-attr]
    tagged = [
        m.name
        for m, data in members
        if m.name.endswith(".yml") and not m.name.startswith("deprecated/") and b"attack.t" in data
    ]
    gone = sorted(random.Random(seed).sample(tagged, n))
    out = work / tarball.name
    with tarfile.open(out, "w:gz") as dst:
        for m, data in members:
            if m.name not in gone:
                dst.addfile(m, io.BytesIO(data) if m.isfile() else None)
    return out, [Path(g).stem for g in gone]


# --- 3. a year of daily changes ----------------------------------------------------------------


def year(base: Path, seed: int, runs: int, profile: bool) -> None:
    print(
        f"\n3. a year of daily changes: {MAIN} imported, then 365 snapshots one a day written by "
        "app.history.writing (1-10 seeded techniques flipped a day in all:enterprise and "
        f"catalog:{MAIN}); reads through a TestClient on create_app, warm, {runs} runs each"
    )
    path = copy_of(base, "kbmap-history-year.sqlite")
    s, _plain, engine = engines(path)
    import_file(engine, s, MAIN_FILE, MAIN)
    first = backdate_first(engine)
    t = time.perf_counter()
    changed = write_year(engine, seed)
    print(
        f"  365 days written in {time.perf_counter() - t:.1f} s: {changed} technique flips, "
        f"{scalar(engine, 'SELECT COUNT(*) FROM coverage_delta')} delta rows in all"
    )
    read_figures(path, first, runs, profile)


def backdate_first(engine: Any) -> int:
    """The import's snapshot moved 366 days back, so the year's days follow it in time too."""
    from sqlalchemy import update
    from sqlmodel import Session, col

    from app.history.tables import CoverageSnapshot

    at = datetime.now(UTC) - timedelta(days=366)
    sid = int(scalar(engine, "SELECT MAX(id) FROM coverage_snapshot"))
    with Session(engine) as session:
        session.execute(
            update(CoverageSnapshot).where(col(CoverageSnapshot.id) == sid).values(at=at)
        )
        session.commit()
    return sid


def write_year(engine: Any, seed: int) -> int:
    """365 days, one transaction each: a snapshot row, then both scopes through `write_scope`."""
    from sqlmodel import Session

    from app.history.writing import current_values

    rng = random.Random(seed)
    ids = sorted(active_ids(engine))
    keys = ("all:enterprise", f"catalog:{MAIN}")
    with Session(engine) as session:
        states = {k: current_values(session, k) for k in keys}
    start = datetime.now(UTC) - timedelta(days=365)
    flips = 0
    for day in range(365):
        chosen = rng.sample(ids, rng.randint(1, 10))
        flips += len(chosen)
        write_day(engine, start + timedelta(days=day), states, chosen, rng)
    return flips


def active_ids(engine: Any) -> list[str]:
    from sqlmodel import Session

    from app.attack import service as attack_service

    with Session(engine) as session:
        release = attack_service.get_release(session, domain="enterprise", version="18.1")
        return attack_service.technique_index(session, release=release).active_ids()


def write_day(
    engine: Any,
    at: datetime,
    states: dict[str, dict[str, Any]],
    chosen: list[str],
    rng: random.Random,
) -> None:
    """One day's snapshot: each chosen technique lost, rescored or gained, the same in both scopes
    (one catalog: its scope and the domain's are one set), with rule footprints for its reasons."""
    from app.core.changes import Change
    from app.core.db import transaction
    from app.history.reasons import ReasonContext
    from app.history.writing import ScopeValues, write_scope, write_snapshot

    moves = {t: _flipped(states[f"catalog:{MAIN}"].get(t), rng) for t in chosen}
    change = Change("catalog_replace", "enterprise", MAIN)
    ctx = ReasonContext(change, *_footprints(at, moves))
    with transaction(engine) as session:
        snapshot = write_snapshot(session, change, None, at)
        for key, state in states.items():
            for t, value in moves.items():
                _put(state, t, value)
            values = ScopeValues(key, RELEASE, dict(state), environment=False)
            write_scope(session, snapshot.id or 0, values, ctx)


def _flipped(value: Any, rng: random.Random) -> Any:
    """Covered: lost half the time, else another score; not covered: gained at some score."""
    if value is None:
        return (rng.choice(SCORES), None)
    if rng.random() < 0.5:
        return None
    return (rng.choice([x for x in SCORES if x != value[0]]), None)


def _put(state: dict[str, Any], technique: str, value: Any) -> None:
    if value is None:
        state.pop(technique, None)
    else:
        state[technique] = value


def _footprints(at: datetime, moves: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A rule retired for the techniques lost, a rule added for those gained or rescored."""
    from app.catalog.service import RuleFootprint

    day = at.strftime("%Y%m%d")
    lost = frozenset(t for t, v in moves.items() if v is None)
    kept = frozenset(t for t, v in moves.items() if v is not None)
    before = {f"retired-{day}": RuleFootprint(True, "stable", lost, ())} if lost else {}
    after = {f"added-{day}": RuleFootprint(True, "stable", kept, ())} if kept else {}
    return before, after


class Read:
    """One read: its URL, and the same question asked of the service in a read session."""

    def __init__(self, label: str, url: str, call: Callable[[Any], object]) -> None:
        self.label, self.url, self.call = label, url, call


def reads(first: int, month: str) -> list[Read]:
    from app.history import service as h

    def history(**filters: Any) -> Callable[[Any], object]:
        return lambda se: h.coverage_history(se, scope=h.resolve_scope(se, **filters))

    def changes(since: str) -> Callable[[Any], object]:
        return lambda se: h.coverage_changes(se, scope=h.resolve_scope(se), since=since, limit=100)

    base = "/api/v1/coverage"
    return [
        Read("GET /coverage/history", f"{base}/history", history()),
        Read(
            "GET /coverage/history?tactic=execution",
            f"{base}/history?tactic=execution",
            history(tactics=["execution"]),
        ),
        Read(
            "GET /coverage/history?platform=Windows",
            f"{base}/history?platform=Windows",
            history(platforms=["Windows"]),
        ),
        Read(
            f"GET /coverage/changes?since={first} (the first snapshot)",
            f"{base}/changes?since={first}",
            changes(str(first)),
        ),
        Read(
            f"GET /coverage/changes?since={month} (30 days ago)",
            f"{base}/changes?since={month}",
            changes(month),
        ),
    ]


def read_figures(path: Path, first: int, runs: int, profile: bool) -> None:
    """Each read through the API (the figure against its goal), then in-process (the service's
    share; the rest is routing, validation and JSON); a cProfile of the service when missed."""
    from fastapi.testclient import TestClient

    from app.core.db import make_engine
    from app.main import create_app

    month = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
    engine = make_engine(settings_for(path).database_url)
    with TestClient(create_app(settings_for(path))) as client:
        for read in reads(first, month):
            missed = read_figure(client, read, runs)
            service_figure(engine, read, runs)
            if missed or profile:
                profile_service(engine, read)


def read_figure(client: Any, read: Read, runs: int) -> bool:
    times, body = [], None
    for _ in range(runs + 1):
        t = time.perf_counter()
        r = client.get(read.url)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, f"{read.url}: {r.status_code} {r.text[:300]}"
        body = r.json()
    p50 = pct(times[1:], 50)
    print(
        f"  {read.label}: {_size(body)}; first request {ms(times[0])}, then p50 {ms(p50)}, "
        f"p95 {ms(pct(times[1:], 95))} (goal p50 <= 100 ms){_missed(p50 * 1000 > GOAL_MS)}"
    )
    return p50 * 1000 > GOAL_MS


def service_figure(engine: Any, read: Read, runs: int) -> None:
    """Wall time, and the process's CPU time, which a busy machine's waits do not inflate."""
    from app.core.db import read_session

    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(runs + 1):
        t, c = time.perf_counter(), time.process_time()
        with read_session(engine) as session:
            read.call(session)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    print(
        f"    in-process (service call, no HTTP) p50 {ms(pct(wall[1:], 50))}, p95 "
        f"{ms(pct(wall[1:], 95))}; CPU time p50 {ms(pct(cpu[1:], 50))}"
    )


def profile_service(engine: Any, read: Read, calls: int = 3) -> None:
    """The service call profiled (the TestClient serves in another thread, out of cProfile's
    sight); the route's own share is the gap between the two figures above."""
    from app.core.db import read_session

    prof = cProfile.Profile()
    for _ in range(calls):
        with read_session(engine) as session:
            prof.enable()
            read.call(session)
            prof.disable()
    print_stats(prof, f"{calls} service calls")


def _size(body: Any) -> str:
    if "points" in body:
        last = body["points"][-1]["covered"] if body["points"] else 0
        return f"{len(body['points'])} points, {last} covered at the last"
    return (
        f"{body['total']} changes ({body['gained']} gained, {body['lost']} lost; page of "
        f"{len(body['items'])}), net +{len(body['net_gained'])} -{len(body['net_lost'])}"
    )


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--imports", type=int, default=7, help="replaces timed per side, per case")
    ap.add_argument("--runs", type=int, default=30, help="requests timed per read (>= 20)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--removed", type=int, default=10, help="rules left out of the replace")
    ap.add_argument("--dir", type=Path, help="build and keep the databases here")
    ap.add_argument("--profile", action="store_true", help="profile every figure, not only misses")
    ap.add_argument(
        "--parts", default="1,2,3", help="which parts to run (1: cost, 2: bytes, 3: year)"
    )
    args = ap.parse_args()
    print(
        "coverage history benchmark (issue #16); no peer: none of the compared tools keeps a "
        "coverage history, so each figure stands against its goal alone"
    )
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        run(args.dir, args)
        return
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        run(Path(tmp), args)


def run(work: Path, args: argparse.Namespace) -> None:
    base = work / "kbmap-history-base.sqlite"
    if not base.exists():
        build_base(base)
    parts = {int(p) for p in args.parts.split(",")}
    load()
    if 1 in parts:
        snapshot_cost(base, args.imports, args.profile)
        load()
    if 2 in parts:
        storage(base, args.seed, args.removed, work)
    if 3 in parts:
        year(base, args.seed, args.runs, args.profile)
        load()


def load() -> None:
    one, five, _ = os.getloadavg()
    print(
        f"[{time.strftime('%H:%M:%S')}, load average {one:.2f} (5 min {five:.2f}), "
        f"{os.cpu_count()} cores]"
    )


if __name__ == "__main__":
    main()
