"""The bundle feed (read one bundle ahead on a worker thread) and the collector pause."""

from __future__ import annotations

import gc
import gzip
import hashlib
import json
import threading
from pathlib import Path

import pytest

from app.attack.sources import BundleFeed, read_bundle_json
from app.core.config import Limits
from app.core.errors import InvalidInput, KbmapError, NotFound, TooLarge
from app.core.gc_pause import paused_gc
from tests.conftest import attack_file

ICS = ("ics-attack-17.1.json.gz", "ics-attack-18.1.json.gz")


def _folder(tmp: Path, *names: str) -> Path:
    for name in names:
        (tmp / name).write_bytes(Path(attack_file(name)).read_bytes())
    (tmp / "notes.txt").write_text("not a bundle")
    return tmp


def test_feed_gives_each_bundle_once_in_order_as_json(tmp_path: Path) -> None:
    folder = _folder(tmp_path, *reversed(ICS))
    with BundleFeed([str(folder)], limits=Limits()) as feed:
        got = list(feed)
    assert [Path(b.source).name for b in got] == sorted(ICS)  # folder order, bundles only
    for source, data, sha in got:  # what a direct gunzip gives, independently of the feed
        assert data == gzip.decompress(Path(source).read_bytes())
        assert sha == hashlib.sha256(data).hexdigest()


def test_feed_reads_one_bundle_ahead_only(tmp_path: Path) -> None:
    folder = _folder(tmp_path, *ICS)
    reads: list[str] = []
    lock = threading.Lock()

    import app.attack.sources as sources

    real = sources.read_bundle_json

    def counting(source: str, **kw: object) -> bytes:
        with lock:
            reads.append(Path(source).name)
        return real(source, **kw)  # type: ignore[arg-type]

    sources.read_bundle_json = counting  # type: ignore[assignment]
    try:
        feed = BundleFeed([str(folder)], limits=Limits())
        it = iter(feed)
        first = next(it).source
        feed._next.result()  # type: ignore[union-attr]  # the look-ahead read has finished
        assert reads == list(ICS)  # the first, and the one after it, and no more
        assert Path(first).name == ICS[0]
        feed.close()
    finally:
        sources.read_bundle_json = real  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("truncated gzip", InvalidInput, "gzip data is truncated"),
        ("over the limit", TooLarge, "uncompressed size exceeds the limit of 1000000 bytes"),
    ],
)
def test_read_errors_surface_where_the_bundle_is_taken(
    tmp_path: Path, case: str, error: type[KbmapError], message: str
) -> None:
    data = Path(attack_file("ics-attack-18.1.json.gz")).read_bytes()
    bad = tmp_path / "ics-attack-18.1.json.gz"
    bad.write_bytes(data[: len(data) // 2] if case == "truncated gzip" else data)
    limits = Limits(max_bundle_bytes=1_000_000) if case == "over the limit" else Limits()
    with pytest.raises(error) as direct:  # the same error as a read without the feed
        read_bundle_json(str(bad), limits=limits, timeout=1, retries=0)
    good = tmp_path / "small.json"
    good.write_text('{"type": "bundle", "objects": []}')
    feed = BundleFeed([str(good), str(bad)], limits=limits)
    it = iter(feed)
    first = next(it)  # the good bundle is served before the bad one fails
    assert (first.source, first.data) == (str(good), good.read_bytes())
    with pytest.raises(error) as via_feed:
        next(it)
    assert str(via_feed.value) == str(direct.value) and message in str(via_feed.value)
    assert via_feed.value.location is not None and via_feed.value.location.file == str(bad)


def test_source_errors_are_raised_before_any_read(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file or folder"):
        BundleFeed([attack_file(ICS[0]), str(tmp_path / "nope.json")], limits=Limits())
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match=r"folder holds no \.json or \.json\.gz bundle"):
        BundleFeed([str(tmp_path / "empty")], limits=Limits())


@pytest.mark.integration
def test_a_bad_bundle_in_a_folder_ingest_still_names_its_file(tmp_path: Path) -> None:
    from app.attack.ingest import ingest_sources
    from app.core.db import make_engine
    from app.models import init_db

    folder = _folder(tmp_path, ICS[0])
    (folder / "zz-broken.json").write_text('{"type": "bundle",\n "objects": [}')
    engine = make_engine(f"sqlite:///{tmp_path / 'k.sqlite'}")
    init_db(engine)
    with pytest.raises(InvalidInput, match="not valid JSON") as info:
        ingest_sources(engine, [str(folder)], limits=Limits())
    assert info.value.location is not None
    assert info.value.location.file == str(folder / "zz-broken.json")
    with engine.connect() as conn:  # all or nothing: the good bundle before it is not kept
        assert conn.exec_driver_sql("SELECT count(*) FROM release").scalar() == 0
    engine.dispose()


def test_paused_gc_is_counted_and_restores_the_previous_state() -> None:
    assert gc.isenabled()
    started, release = threading.Event(), threading.Event()

    def other() -> None:
        with paused_gc():
            started.set()
            release.wait(5)

    t = threading.Thread(target=other)
    t.start()
    started.wait(5)
    with paused_gc():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other pause is still on
    release.set()
    t.join()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


@pytest.mark.integration
def test_cli_ingest_output_survives_the_fast_exit(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    db = tmp_path / "k.sqlite"
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "ingest", attack_file(ICS[1]), "--json"],
        env={"KBMAP_DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    [outcome] = json.loads(proc.stdout)  # the whole document was flushed before the exit
    assert (outcome["domain"], outcome["version"], outcome["status"]) == ("ics", "18.1", "loaded")
    assert not Path(f"{db}-wal").exists()  # the database was closed (WAL checkpointed)
