"""The refresh flow against a real HTTP server on 127.0.0.1 standing in for MITRE.

The server serves the shared STIX 2.1 ICS releases uncompressed (as MITRE's index URLs do) and an
index rewritten to point at it; each test scripts its replies (errors, truncation, stalls) and
counts requests, so "nothing was downloaded" is observed, not assumed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from app.attack.tables import AttackObject, Relationship, Release
from app.auth.service import create_token
from app.cli import refresh as refresh_cli
from app.core.config import Settings, get_settings
from app.core.db import make_engine
from app.core.errors import InvalidInput, KbmapError, NotFound, Unavailable
from app.models import init_db
from app.refresh import service as refresh_service
from tests.conftest import ATTACK_DIR, ROOT

FAST = 0.01  # retry backoff for tests


@lru_cache(maxsize=4)
def release_json(name: str) -> bytes:
    """The uncompressed bytes of a shared release file (what MITRE's URL serves)."""
    with gzip.open(ATTACK_DIR / name) as fh:
        return fh.read()


ICS18 = "stix21/ics-attack-18.1.json.gz"
ICS17 = "stix21/ics-attack-17.1.json.gz"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    length: int | None = None  # Content-Length to declare; None: the body's real length
    delay: float = 0.0  # seconds to stall before answering


class Server:
    """A scripted HTTP server: path → replies (the last one repeats); records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.requests: list[str] = []
        self.stop = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                queue = owner.routes.get(self.path) or [Reply(404, b"not here")]
                reply = queue.pop(0) if len(queue) > 1 else queue[0]
                if reply.delay:
                    owner.stop.wait(reply.delay)
                try:
                    self.send_response(reply.status)
                    length = reply.length if reply.length is not None else len(reply.body)
                    self.send_header("Content-Length", str(length))
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        class Quiet(ThreadingHTTPServer):
            block_on_close = False
            daemon_threads = True

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies)

    def hits(self, path: str) -> int:
        return self.requests.count(path)

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.serve("/ics-attack-18.1.json", Reply(body=release_json(ICS18)))
    srv.serve("/ics-attack-17.1.json", Reply(body=release_json(ICS17)))
    yield srv
    srv.close()


def write_index(
    server: Server, folder: Path, *, keep: Callable[[str, str], bool] | None = None
) -> Path:
    """MITRE's real index, ICS only, its 17.1 and 18.1 pointing at the server; also served."""
    raw = json.loads((ATTACK_DIR / "stix21" / "index.json").read_text(encoding="utf-8"))
    collections = []
    for coll in raw["collections"]:
        domain = coll["name"].split()[0].lower()
        if domain != "ics" and not (
            keep and any(keep(domain, v["version"]) for v in coll["versions"])
        ):
            continue
        versions = []
        for v in coll["versions"]:
            if keep and not keep(domain, v["version"]):
                continue
            if v["version"] in ("17.1", "18.1"):
                v = {**v, "url": server.url(f"/{domain}-attack-{v['version']}.json")}
            versions.append(v)
        collections.append({**coll, "versions": versions})
    body = json.dumps({**raw, "collections": collections}).encode()
    path = folder / "index.json"
    path.write_bytes(body)
    server.serve("/index.json", Reply(body=body))
    return path


@pytest.fixture
def index_file(server: Server, tmp_path: Path) -> Path:
    return write_index(server, tmp_path)


def make_settings(tmp_path: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'kbmap.sqlite'}",
        "environment": "test",
        "download_timeout": 5.0,
        "download_retries": 2,
        **kw,
    }
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = make_engine(settings.database_url)
    init_db(eng)
    yield eng
    eng.dispose()


def loaded(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as s:
        rows = s.exec(select(Release).order_by(Release.domain, col(Release.version_key))).all()
        return [(r.domain, r.version) for r in rows]


def row_counts(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as s:
        return (
            s.exec(select(func.count()).select_from(Release)).one(),
            s.exec(select(func.count()).select_from(AttackObject)).one(),
            s.exec(select(func.count()).select_from(Relationship)).one(),
        )


def run(
    engine: Engine, settings: Settings, index: Path, **kw: Any
) -> refresh_service.RefreshReport:
    return refresh_service.refresh(engine, settings, index_file=index, download_backoff=FAST, **kw)


# ---- the happy path ----------------------------------------------------------------------------


def test_new_release_is_fetched_verified_and_ingested(
    engine: Engine, settings: Settings, index_file: Path, server: Server
) -> None:
    calls: list[tuple[str, int | None, int | None]] = []

    def step(message: str, done: int | None = None, total: int | None = None) -> None:
        calls.append((message, done, total))

    report = run(engine, settings, index_file, step=step)
    steps = [message for message, _, _ in calls]

    raw = json.loads(release_json(ICS18))["objects"]
    n_rel = sum(o["type"] == "relationship" for o in raw)
    n_obj = sum(o["type"] not in ("relationship", "x-mitre-collection") for o in raw)
    active = sum(
        o["type"] == "attack-pattern" and not o.get("revoked") and not o.get("x_mitre_deprecated")
        for o in raw
    )
    sha = hashlib.sha256(release_json(ICS18)).hexdigest()
    assert report.summary == "fetched ics 18.1"
    assert [
        (f.domain, f.version, f.objects, f.relationships, f.sha256, f.pinned)
        for f in report.fetched
    ] == [("ics", "18.1", n_obj, n_rel, sha, True)]
    assert report.fetched[0].url == server.url("/ics-attack-18.1.json")
    assert [(s.domain, s.reason) for s in report.skipped] == [
        ("enterprise", "the index lists no enterprise release"),
        ("mobile", "the index lists no mobile release"),
    ]
    assert loaded(engine) == [("ics", "18.1")]
    assert row_counts(engine) == (1, n_obj, n_rel)
    with Session(engine) as s:
        release = s.exec(select(Release)).one()
        assert (release.sha256, release.stix_version) == (sha, "2.1")
        assert release.technique_count == active
        assert release.source == server.url("/ics-attack-18.1.json")
    assert server.hits("/ics-attack-18.1.json") == 1
    assert server.hits("/ics-attack-17.1.json") == 0
    assert "downloading ics 18.1" in steps and "writing ics 18.1" in steps
    size = len(release_json(ICS18))  # the bar's bytes end at the whole download
    downloaded = [(d, t) for m, d, t in calls if m == "downloading ics 18.1" and d is not None]
    assert len(downloaded) > 1 and downloaded[-1] == (size, size)
    assert [d for d, _ in downloaded] == sorted(d for d, _ in downloaded)
    as_json = json.loads(json.dumps(report.as_dict()))
    assert as_json["summary"] == "fetched ics 18.1" and as_json["fetched"][0]["version"] == "18.1"


def test_second_run_fetches_nothing(
    engine: Engine, settings: Settings, index_file: Path, server: Server
) -> None:
    run(engine, settings, index_file)
    counts = row_counts(engine)
    again = run(engine, settings, index_file)
    assert again.summary == "nothing new (ics 18.1 already loaded)"
    assert again.fetched == []
    assert server.hits("/ics-attack-18.1.json") == 1
    assert row_counts(engine) == counts


def test_dry_run_changes_nothing(
    engine: Engine, settings: Settings, index_file: Path, server: Server
) -> None:
    report = run(engine, settings, index_file, domains=["ics"], dry_run=True)
    assert report.dry_run and report.summary == "dry run: would fetch ics 18.1"
    assert [(f.domain, f.version, f.sha256, f.pinned) for f in report.fetched] == [
        ("ics", "18.1", None, True)
    ]
    assert [r for r in server.requests if r != "/index.json"] == []
    assert row_counts(engine) == (0, 0, 0)


def test_named_version_and_newer_already_loaded(
    engine: Engine, settings: Settings, index_file: Path, server: Server, tmp_path: Path
) -> None:
    old = run(engine, settings, index_file, domains=["ICS"], version="17.1")
    assert old.summary == "fetched ics 17.1"
    assert run(engine, settings, index_file, domains=["ics"]).summary == "fetched ics 18.1"
    assert loaded(engine) == [("ics", "17.1"), ("ics", "18.1")]
    stale = write_index(server, tmp_path, keep=lambda d, v: d == "ics" and v != "18.1")
    report = run(engine, settings, stale, domains=["ics"])
    assert report.summary == "nothing new"
    assert [s.reason for s in report.skipped] == ["a newer release (18.1) is loaded"]
    with pytest.raises(NotFound, match=r"lists no release 9\.9 of ics"):
        run(engine, settings, index_file, domains=["ics"], version="9.9")
    with pytest.raises(InvalidInput, match=r"not of the form MAJOR\.MINOR"):
        run(engine, settings, index_file, version="latest")
    assert server.hits("/ics-attack-18.1.json") == 1


def test_500_then_success_is_retried_and_ingested(
    engine: Engine, settings: Settings, index_file: Path, server: Server
) -> None:
    server.serve("/ics-attack-18.1.json", Reply(500, b"busy"), Reply(body=release_json(ICS18)))
    report = refresh_service.refresh(
        engine, settings, index_url=server.url("/index.json"), download_backoff=FAST
    )
    assert report.summary == "fetched ics 18.1"
    assert server.hits("/ics-attack-18.1.json") == 2
    assert loaded(engine) == [("ics", "18.1")]


def test_two_domains_in_one_call_stix20_and_21(
    engine: Engine, settings: Settings, server: Server, tmp_path: Path
) -> None:
    """A STIX 2.0 bundle has no collection object: the version comes from MITRE's file name."""
    index = write_index(server, tmp_path, keep=lambda d, v: d in ("ics", "mobile"))
    mobile = "mobile-attack-18.1.json.gz"
    server.serve("/mobile-attack-18.1.json", Reply(body=release_json(mobile)))
    report = run(engine, settings, index, domains=["mobile", "ics"])
    assert report.summary == "fetched mobile 18.1, ics 18.1"
    assert [f.pinned for f in report.fetched] == [False, True]
    assert loaded(engine) == [("ics", "18.1"), ("mobile", "18.1")]


# ---- failures leave the database as it was -----------------------------------------------------


def test_corrupt_download_changes_nothing(
    engine: Engine, settings: Settings, index_file: Path, server: Server
) -> None:
    server.serve("/ics-attack-18.1.json", Reply(body=b"\x00garbage, not JSON at all"))
    with pytest.raises(InvalidInput, match="not valid JSON") as info:
        run(engine, settings, index_file)
    assert server.url("/ics-attack-18.1.json") in str(info.value)
    assert row_counts(engine) == (0, 0, 0)


def test_one_bad_domain_loads_no_domain(
    engine: Engine, settings: Settings, server: Server, tmp_path: Path
) -> None:
    index = write_index(server, tmp_path, keep=lambda d, v: d in ("ics", "mobile"))
    server.serve("/mobile-attack-18.1.json", Reply(body=b'{"type": "bundle", "objects": 3}'))
    with pytest.raises(InvalidInput, match="'objects' is not a list"):
        run(engine, settings, index, domains=["ics", "mobile"])
    assert row_counts(engine) == (0, 0, 0)


def test_truncated_download_is_retried_then_refused(
    engine: Engine, settings: Settings, index_file: Path, server: Server
) -> None:
    body = release_json(ICS18)
    server.serve("/ics-attack-18.1.json", Reply(body=body[:50_000], length=len(body)))
    with pytest.raises(Unavailable, match="download failed after 3 attempts"):
        run(engine, settings, index_file)
    assert server.hits("/ics-attack-18.1.json") == 3
    assert row_counts(engine) == (0, 0, 0)


def test_version_mismatch_names_both_versions(
    engine: Engine, settings: Settings, index_file: Path, server: Server
) -> None:
    server.serve("/ics-attack-18.1.json", Reply(body=release_json(ICS17)))
    with pytest.raises(InvalidInput) as info:
        run(engine, settings, index_file)
    assert str(info.value) == (
        f"{server.url('/ics-attack-18.1.json')}: "
        "the index promised ics 18.1, but the download holds ics 17.1"
    )
    assert row_counts(engine) == (0, 0, 0)


def test_stalled_server_times_out(
    engine: Engine, index_file: Path, server: Server, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, download_timeout=0.5, download_retries=1)
    server.serve("/ics-attack-18.1.json", Reply(body=release_json(ICS18), delay=5))
    start = time.monotonic()
    with pytest.raises(Unavailable, match=r"after 2 attempts: timed out after 0.5 s"):
        run(engine, settings, index_file)
    assert time.monotonic() - start < 3
    assert server.hits("/ics-attack-18.1.json") == 2
    assert row_counts(engine) == (0, 0, 0)


def test_sha256_mismatch_against_the_manifest(
    engine: Engine, index_file: Path, server: Server, tmp_path: Path
) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "releases.yaml").write_text(
        f"releases:\n  - domain: ics\n    version: '18.1'\n    sha256: '{'0' * 64}'\n"
    )
    settings = make_settings(tmp_path, kb_dir=kb)
    with pytest.raises(InvalidInput, match=f"release manifest pins {'0' * 64}") as info:
        run(engine, settings, index_file)
    assert hashlib.sha256(release_json(ICS18)).hexdigest() in str(info.value)
    assert row_counts(engine) == (0, 0, 0)


def test_bad_arguments(
    engine: Engine, settings: Settings, index_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="not both"):
        refresh_service.refresh(
            engine, settings, index_url="http://x/index.json", index_file=index_file
        )
    with pytest.raises(InvalidInput, match="unknown ATT&CK domain 'pre'"):
        run(engine, settings, index_file, domains=["pre"])
    with pytest.raises(NotFound, match="no such index file"):
        run(engine, settings, tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"collections": 1}')
    with pytest.raises(InvalidInput, match=r"bad\.json: not an ATT&CK collection index"):
        run(engine, settings, tmp_path / "bad.json")


# ---- front ends: service start, HTTP route, CLI ------------------------------------------------


def test_default_index_is_an_index_attack_source(
    engine: Engine, server: Server, index_file: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, attack_source=server.url("/index.json"))
    report = refresh_service.refresh(engine, settings, domains=["ics"], dry_run=True)
    assert report.index == server.url("/index.json")
    assert report.summary == "dry run: would fetch ics 18.1"
    assert server.requests == ["/index.json"]


def test_startup_load_uses_an_index_source(
    server: Server, index_file: Path, tmp_path: Path
) -> None:
    from app.refresh.startup import ensure_attack_loaded

    settings = make_settings(tmp_path, attack_source=server.url("/index.json"))
    eng = make_engine(settings.database_url)
    init_db(eng)
    assert ensure_attack_loaded(eng, settings) == ["fetched ics 18.1"]
    assert ensure_attack_loaded(eng, settings) == []
    assert loaded(eng) == [("ics", "18.1")]
    eng.dispose()


def test_route_runs_the_service(server: Server, index_file: Path, tmp_path: Path) -> None:
    from app.main import create_app

    app = create_app(make_settings(tmp_path, attack_source=server.url("/index.json")))
    with TestClient(app) as client:
        assert client.post("/api/v1/refresh").status_code == 401  # a refresh is a write
        _, token = create_token(app.state.engine, app.state.settings, name="t", scopes=["write"])
        client.headers["Authorization"] = f"Bearer {token}"
        dry = client.post("/api/v1/refresh", json={"domains": ["ics"], "dry_run": True})
        assert dry.status_code == 200, dry.text
        assert dry.json()["summary"] == "dry run: would fetch ics 18.1"
        assert server.hits("/ics-attack-18.1.json") == 0
        bad = client.post("/api/v1/refresh", json={"domains": ["pre"]})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
        done = client.post("/api/v1/refresh")
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["summary"] == "fetched ics 18.1"
        assert body["fetched"][0]["sha256"] == hashlib.sha256(release_json(ICS18)).hexdigest()


def cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        "KBMAP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
        "KBMAP_ENVIRONMENT": "test",
        "KBMAP_DOWNLOAD_TIMEOUT": "5",
        "KBMAP_DOWNLOAD_RETRIES": "0",
    }


def test_cli_command(
    index_file: Path, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in cli_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """Stands in for the kbmap root."""

    refresh_cli.register(app)
    runner = CliRunner()
    try:
        dry = runner.invoke(app, ["refresh", "--index-file", str(index_file), "--dry-run"])
        assert (dry.exit_code, dry.stdout) == (0, "dry run: would fetch ics 18.1\n")
        first = runner.invoke(
            app, ["refresh", "--index-file", str(index_file), "--domain", "ics", "--json"]
        )
        assert first.exit_code == 0, first.output
        report = json.loads(first.stdout)
        assert [(f["domain"], f["version"]) for f in report["fetched"]] == [("ics", "18.1")]
        again = runner.invoke(app, ["refresh", "--index-url", server.url("/index.json")])
        assert (again.exit_code, again.stdout) == (0, "nothing new (ics 18.1 already loaded)\n")
        failed = runner.invoke(app, ["refresh", "--index-file", str(tmp_path / "none.json")])
        assert failed.exit_code == 1 and isinstance(failed.exception, KbmapError)
    finally:
        get_settings.cache_clear()


def kbmap(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cli_env(tmp_path)}
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_script_is_cron_friendly(index_file: Path, server: Server, tmp_path: Path) -> None:
    script = str(ROOT / "scripts" / "refresh_stix.py")
    ok = kbmap([script, "--index-file", str(index_file), "--json"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["summary"] == "fetched ics 18.1"
    again = kbmap([script, "--index-file", str(index_file)], tmp_path)
    assert (again.returncode, again.stdout) == (0, "nothing new (ics 18.1 already loaded)\n")
    server.serve("/ics-attack-17.1.json", Reply(body=b"garbage"))
    bad = kbmap([script, "--index-file", str(index_file), "--version", "17.1"], tmp_path)
    assert bad.returncode == 1 and bad.stdout == ""
    url = server.url("/ics-attack-17.1.json")
    assert bad.stderr.splitlines() == [
        f"kbmap: {url}, line 1: not valid JSON: unexpected character"
    ]


def test_kbmap_refresh_command(index_file: Path, tmp_path: Path) -> None:
    """`kbmap refresh` once the lead has wired `register` into app/cli/main.py."""
    from app.cli.main import app

    if "refresh" not in {c.name for c in typer.main.get_command(app).commands.values()}:  # type: ignore[attr-defined]
        pytest.skip("refresh is not registered in app/cli/main.py yet")
    proc = kbmap(["-m", "app.cli.main", "refresh", "--index-file", str(index_file)], tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "fetched ics 18.1\n"), proc.stderr
