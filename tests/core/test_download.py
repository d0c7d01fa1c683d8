"""Downloads have a total deadline: a mirror that trickles bytes never trips a read timeout, so
without one it holds a refresh or an ingest for as long as it likes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.core.config import Settings
from app.core.db import make_engine
from app.core.download import fetch
from app.core.errors import Unavailable
from app.models import init_db
from app.refresh import service as refresh_service
from tests.conftest import ATTACK_DIR, ROOT

pytestmark = pytest.mark.integration  # a slow HTTP server on 127.0.0.1, kbmap in a subprocess

BYTES, EVERY = 240, 0.25  # the trickle: 240 bytes, one each 0.25 s, 60 s in all
TIMEOUT, DEADLINE = 5.0, 1.5


class Trickle:
    """127.0.0.1 server answering every GET with a declared body sent one byte at a time."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(BYTES))
                self.end_headers()
                try:
                    for _ in range(BYTES):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        if owner.stop.wait(EVERY):
                            return
                except OSError:
                    pass  # the client gave up

            def log_message(self, *args: Any) -> None:
                pass

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/enterprise-attack-18.1.json"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def trickle() -> Iterator[Trickle]:
    server = Trickle()
    yield server
    server.close()


def test_fetch_gives_up_at_the_deadline(trickle: Trickle) -> None:
    start = time.monotonic()
    with pytest.raises(Unavailable) as info:
        fetch(trickle.url, max_bytes=1 << 20, timeout=TIMEOUT, retries=2, deadline=DEADLINE)
    took = time.monotonic() - start
    assert str(info.value) == (
        f"{trickle.url}: download did not finish within 1.5 s (KBMAP_DOWNLOAD_DEADLINE)"
    )
    assert DEADLINE <= took < DEADLINE + 1.0


def test_a_refresh_fails_within_the_deadline(trickle: Trickle, tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'k.sqlite'}",
        environment="test",
        attack_source=trickle.url,
        download_timeout=TIMEOUT,
        download_deadline=DEADLINE,
    )
    engine = make_engine(settings.database_url)
    init_db(engine)
    for index_file in (None, mirror_index(trickle, tmp_path)):  # a bundle source; an index's
        start = time.monotonic()
        with pytest.raises(Unavailable, match=r"download did not finish within 1\.5 s"):
            refresh_service.refresh(engine, settings, index_file=index_file, domains=["enterprise"])
        assert time.monotonic() - start < DEADLINE + 1.0
    engine.dispose()


def mirror_index(trickle: Trickle, folder: Path) -> Path:
    """MITRE's real index with enterprise 18.1 pointing at the trickling mirror."""
    raw = json.loads((ATTACK_DIR / "stix21" / "index.json").read_text(encoding="utf-8"))
    for coll in raw["collections"]:
        for v in coll["versions"]:
            if coll["name"].startswith("Enterprise") and v["version"] == "18.1":
                v["url"] = trickle.url
    path = folder / "index.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def test_an_ingest_fails_within_the_deadline_in_one_line(trickle: Trickle, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KBMAP_")}
    env.update(
        KBMAP_DATABASE_URL=f"sqlite:///{tmp_path / 'k.sqlite'}",
        KBMAP_DOWNLOAD_TIMEOUT=str(TIMEOUT),
        KBMAP_DOWNLOAD_DEADLINE="2",
        PYTHONPATH=str(ROOT),
    )
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "ingest", trickle.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - start
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"kbmap: {trickle.url}: download did not finish within 2 s (KBMAP_DOWNLOAD_DEADLINE)"
    ]
    assert took < BYTES * EVERY / 2  # far from the trickle's end (process start-up is slow here)
