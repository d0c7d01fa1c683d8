"""`kbmap refresh --taxii` against real TAXII 2.1 servers on 127.0.0.1.

medallion (tests/refresh/taxii_server.py) is loaded with the shared STIX 2.1 ICS releases, pages at
200 objects and asks for basic auth; a scripted HTTP server plays the hostile one. Expected counts
come from the release files read here with gzip + json, not through the code under test.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import SecretStr
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from app.attack.tables import AttackObject, Relationship, Release
from app.cli import refresh as refresh_cli
from app.core.config import Limits, Settings, get_settings
from app.core.db import make_engine
from app.core.errors import (
    InvalidInput,
    KbmapError,
    NotFound,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from app.models import init_db
from app.refresh import taxii
from tests.conftest import ATTACK_DIR
from tests.refresh.taxii_server import CollectionSpec, TaxiiServer

ICS = "x-mitre-collection--90c00720-636b-4485-b342-8751d232bf09"
ENTERPRISE = "x-mitre-collection--1f5f1533-f617-4ca8-9ab4-6a02367fa019"
FAST = 0.01


@lru_cache(maxsize=2)
def _raw(version: str) -> str:
    with gzip.open(ATTACK_DIR / "stix21" / f"ics-attack-{version}.json.gz") as fh:
        return fh.read().decode("utf-8")


def release_objects(version: str) -> list[dict[str, Any]]:
    """A fresh copy of the objects of a shared ICS release."""
    return list(json.loads(_raw(version))["objects"])


def expected_counts(version: str) -> tuple[int, int]:
    """(objects, relationships) as the attack tables hold them: the collection object is not one."""
    objs = release_objects(version)
    rel = sum(o["type"] == "relationship" for o in objs)
    return sum(o["type"] not in ("relationship", "x-mitre-collection") for o in objs), rel


def make_settings(tmp_path: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'kbmap.sqlite'}",
        "environment": "test",
        "download_timeout": 5.0,
        "download_retries": 1,
        "taxii_password": SecretStr("s3cret"),
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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TaxiiServer]:
    """medallion holding ICS 17.1 in its ICS ATT&CK collection."""
    folder = tmp_path / "medallion"
    folder.mkdir()
    with TaxiiServer(folder, [CollectionSpec(ICS, "ICS ATT&CK", release_objects("17.1"))]) as srv:
        yield srv


def run(engine: Engine, settings: Settings, url: str, **kw: Any) -> Any:
    kw.setdefault("user", "kbmap")
    return taxii.refresh_taxii(engine, settings, url=url, download_backoff=FAST, **kw)


def loaded(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as s:
        rows = s.exec(select(Release).order_by(Release.domain, col(Release.version_key))).all()
        return [(r.domain, r.version) for r in rows]


def counts(engine: Engine, version: str | None = None) -> tuple[int, int]:
    with Session(engine) as s:
        objs = select(func.count()).select_from(AttackObject)
        rels = select(func.count()).select_from(Relationship)
        if version is not None:
            rid = s.exec(select(Release.id).where(Release.version == version)).one()
            objs = objs.where(AttackObject.release_id == rid)
            rels = rels.where(Relationship.release_id == rid)
        return s.exec(objs).one(), s.exec(rels).one()


# ---- against medallion ---------------------------------------------------------------------------


def test_first_refresh_pages_everything_then_up_to_date(
    engine: Engine, settings: Settings, server: TaxiiServer
) -> None:
    steps: list[tuple[str, int | None]] = []

    def step(message: str, done: int | None = None, total: int | None = None) -> None:
        steps.append((message, done))

    report = run(engine, settings, server.discovery, step=step)
    objects_url = server.collection_url(ICS) + "objects/"
    assert report.summary == "fetched ics 17.1"
    assert [(f.domain, f.version, f.url, f.pinned) for f in report.fetched] == [
        ("ics", "17.1", objects_url, False)
    ]
    assert (report.fetched[0].objects, report.fetched[0].relationships) == expected_counts("17.1")
    assert counts(engine) == expected_counts("17.1")
    with Session(engine) as s:
        assert s.exec(select(Release.source)).one() == objects_url
    # paging is real: 1,651 objects come 200 a page (medallion's page size), 9 pages
    pages = [d for m, d in steps if m == "downloading ics 17.1" and d is not None]
    assert pages == [200, 400, 600, 800, 1000, 1200, 1400, 1600, 1651]
    steps.clear()
    again = run(engine, settings, server.api_root, step=step)  # an API root URL works too
    assert again.summary == "up to date (ics 17.1 already loaded)"
    assert again.fetched == [] and [s.reason for s in again.skipped] == ["already loaded"]
    assert not any(m.startswith("downloading") for m, _ in steps)
    assert counts(engine) == expected_counts("17.1")  # its speed: scripts/bench_taxii.py


def test_new_release_added_to_the_collection_is_fetched(
    engine: Engine, settings: Settings, server: TaxiiServer
) -> None:
    """ICS 18.1 posted into the collection that held 17.1: the collection now holds both
    releases' objects; the refresh loads 18.1 exactly as MITRE's 18.1 file has it."""
    assert run(engine, settings, server.api_root).summary == "fetched ics 17.1"
    seen = {(o["id"], o.get("modified")) for o in release_objects("17.1")}
    new = [o for o in release_objects("18.1") if (o["id"], o.get("modified")) not in seen]
    assert server.add_objects(ICS, new) == len(new)
    dry = run(engine, settings, server.api_root, dry_run=True)
    assert dry.summary == "dry run: would fetch ics 18.1"
    assert loaded(engine) == [("ics", "17.1")]
    report = run(engine, settings, server.api_root, domains=["ics"])
    assert report.summary == "fetched ics 18.1"
    assert loaded(engine) == [("ics", "17.1"), ("ics", "18.1")]
    assert counts(engine, "18.1") == expected_counts("18.1")
    assert counts(engine, "17.1") == expected_counts("17.1")
    want = {
        (o["id"], o.get("modified")) for o in release_objects("18.1") if o["type"] != "relationship"
    }
    want = {w for w in want if not w[0].startswith("x-mitre-collection")}
    with Session(engine) as s:
        rid = s.exec(select(Release.id).where(Release.version == "18.1")).one()
        rows = s.exec(
            select(AttackObject.stix_id, AttackObject.modified).where(
                AttackObject.release_id == rid
            )
        ).all()
    marking = {(sid, m) for sid, m in rows if sid.startswith("marking-definition")}
    assert set(rows) - marking == {w for w in want if not w[0].startswith("marking-definition")}
    assert len(marking) == 1
    assert run(engine, settings, server.api_root).summary == "up to date (ics 18.1 already loaded)"


def test_server_killed_mid_transfer_writes_nothing_and_next_run_works(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    spec = [CollectionSpec(ICS, "ICS ATT&CK", release_objects("17.1"))]
    (tmp_path / "dying").mkdir()
    # objects requests: 1 the release check, 2 the first page, 3 the second page: it dies there
    with TaxiiServer(tmp_path / "dying", spec, die_at=3) as dying:
        with pytest.raises(Unavailable, match=r"download failed after 2 attempts: connection"):
            run(engine, settings, dying.api_root)
        assert dying.proc.wait(timeout=5) == 1
    assert counts(engine) == (0, 0) and loaded(engine) == []
    (tmp_path / "again").mkdir()
    with TaxiiServer(tmp_path / "again", spec, fail_at=3) as flaky:  # a page failing once
        assert run(engine, settings, flaky.api_root).summary == "fetched ics 17.1"
    assert counts(engine) == expected_counts("17.1")


def test_wrong_domain_collection_is_refused(
    engine: Engine, settings: Settings, server: TaxiiServer, tmp_path: Path
) -> None:
    with pytest.raises(NotFound) as info:
        run(engine, settings, server.api_root, domains=["enterprise"])
    assert str(info.value) == (
        f"the server has no enterprise ATT&CK collection; it has: {ICS} (ICS ATT&CK)"
    )
    with pytest.raises(InvalidInput, match=r"\(ICS ATT&CK\) holds ics 17.1, not enterprise"):
        run(engine, settings, server.api_root, collection=ICS, domains=["enterprise"])
    # a collection titled Enterprise whose objects are ICS, its collection object renamed too
    objs = [
        {**o, "name": "Enterprise ATT&CK"} if o["type"] == "x-mitre-collection" else o
        for o in release_objects("17.1")
    ]
    (tmp_path / "liar").mkdir()
    with (
        TaxiiServer(
            tmp_path / "liar", [CollectionSpec(ENTERPRISE, "Enterprise ATT&CK", objs)]
        ) as liar,
        pytest.raises(InvalidInput) as info2,
    ):
        run(engine, settings, liar.api_root)
    assert str(info2.value).endswith(
        f"collection {ENTERPRISE} (Enterprise ATT&CK) says enterprise 17.1, but its objects "
        "are ics 17.1"
    )
    assert counts(engine) == (0, 0)


def test_collection_titled_without_its_domain_is_asked(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """--domain picks by title, else by the x-mitre-collection object's name; a collection that
    has none is no ATT&CK collection and is left alone."""
    identity = {
        "type": "identity",
        "spec_version": "2.1",
        "id": "identity--00000000-0000-4000-8000-000000000001",
        "created": "2024-01-01T00:00:00.000Z",
        "modified": "2024-01-01T00:00:00.000Z",
        "name": "someone",
    }
    spec = [
        CollectionSpec("c-indicators", "Indicators", [identity]),
        CollectionSpec("c-generic", "Industrial control systems", release_objects("17.1")),
    ]
    with TaxiiServer(tmp_path, spec) as srv:
        with pytest.raises(NotFound) as info:
            run(engine, settings, srv.api_root, domains=["mobile"])
        assert str(info.value) == (
            "the server has no mobile ATT&CK collection; it has: c-indicators (Indicators), "
            "c-generic (Industrial control systems)"
        )
        dry = run(engine, settings, srv.api_root, dry_run=True)
        assert [f.url for f in dry.fetched] == [srv.collection_url("c-generic") + "objects/"]
        assert run(engine, settings, srv.api_root, domains=["ics"]).summary == "fetched ics 17.1"
    assert counts(engine) == expected_counts("17.1")


def test_auth(engine: Engine, settings: Settings, server: TaxiiServer) -> None:
    wrong = settings.model_copy(update={"taxii_password": SecretStr("guess")})
    with pytest.raises(Unauthorized) as info:
        run(engine, wrong, server.api_root)
    assert str(info.value) == (
        f"{server.api_root}: the TAXII server refused the credentials "
        "(check --user and KBMAP_TAXII_PASSWORD)"
    )
    assert "guess" not in str(info.value)
    with pytest.raises(Unauthorized):
        run(engine, settings, server.api_root, user=None)  # medallion wants credentials
    with pytest.raises(InvalidInput, match="--user needs the password in KBMAP_TAXII_PASSWORD"):
        run(engine, settings.model_copy(update={"taxii_password": None}), server.api_root)
    with_creds = server.api_root.replace("http://", "http://kbmap:s3cret@")
    with pytest.raises(InvalidInput, match="credentials do not belong in the TAXII URL"):
        run(engine, settings, with_creds, user=None)
    with pytest.raises(InvalidInput, match="must be http"):
        run(engine, settings, "file:///etc/passwd")
    assert counts(engine) == (0, 0)


def test_api_refreshes_from_the_configured_taxii_server_only(
    server: TaxiiServer, tmp_path: Path
) -> None:
    """POST /api/v1/refresh {"source": "taxii"} reads KBMAP_TAXII_URL: a request never names
    the address the server fetches, so a write token cannot aim it at another host."""
    from fastapi.testclient import TestClient

    from app.auth.service import create_token
    from app.main import create_app

    configured = make_settings(tmp_path, taxii_url=server.discovery, taxii_user="kbmap")
    app = create_app(configured)
    with TestClient(app) as client:
        assert client.post("/api/v1/refresh", json={"source": "taxii"}).status_code == 401
        _, token = create_token(app.state.engine, configured, name="t", scopes=["write"])
        client.headers["Authorization"] = f"Bearer {token}"
        dry = client.post("/api/v1/refresh", json={"source": "taxii", "dry_run": True})
        assert (dry.status_code, dry.json()["summary"]) == (200, "dry run: would fetch ics 17.1")
        done = client.post("/api/v1/refresh", json={"source": "taxii", "collection": ICS})
        assert done.status_code == 200, done.text
        assert done.json()["summary"] == "fetched ics 17.1"
        assert done.json()["index"] == server.discovery
        assert loaded(app.state.engine) == [("ics", "17.1")]
        again = client.post("/api/v1/refresh", json={"source": "taxii"}).json()
        assert again["summary"] == "up to date (ics 17.1 already loaded)"
        for body, words in [
            ({"collection": ICS}, '"collection" goes with "source": "taxii"'),
            ({"source": "taxii", "version": "17.1"}, 'no "version"'),
            ({"source": "taxii", "url": "http://evil.example/"}, "url"),
            ({"source": "ftp"}, "source"),
        ]:
            bad = client.post("/api/v1/refresh", json=body)
            assert 400 <= bad.status_code < 500 and words in str(bad.json()), (body, bad.text)
    unset = make_settings(tmp_path / "unset")
    (tmp_path / "unset").mkdir()
    app = create_app(unset)
    with TestClient(app) as client:
        _, token = create_token(app.state.engine, unset, name="t", scopes=["write"])
        client.headers["Authorization"] = f"Bearer {token}"
        bad = client.post("/api/v1/refresh", json={"source": "taxii"})
        assert bad.status_code == 422 and "KBMAP_TAXII_URL" in bad.json()["error"]["message"]


def test_unreadable_collection_is_forbidden(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    spec = [CollectionSpec(ICS, "ICS ATT&CK", release_objects("17.1"), can_read=False)]
    with (
        TaxiiServer(tmp_path, spec) as srv,
        pytest.raises(KbmapError, match="does not allow reading") as info,
    ):
        run(engine, settings, srv.api_root)
    assert info.value.status == 403


def test_cli(server: TaxiiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "KBMAP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
        "KBMAP_ENVIRONMENT": "test",
        "KBMAP_DOWNLOAD_RETRIES": "0",
        "KBMAP_TAXII_PASSWORD": "s3cret",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """Stands in for the kbmap root."""

    refresh_cli.register(app)
    runner = CliRunner()
    base = ["refresh", "--taxii", server.discovery, "--user", "kbmap"]
    try:
        dry = runner.invoke(app, [*base, "--dry-run"])
        assert (dry.exit_code, dry.stdout) == (0, "dry run: would fetch ics 17.1\n"), dry.output
        first = runner.invoke(app, [*base, "--domain", "ics", "--json"])
        assert first.exit_code == 0, first.output
        report = json.loads(first.stdout)
        assert report["summary"] == "fetched ics 17.1" and report["index"] == server.discovery
        again = runner.invoke(app, [*base, "--collection", ICS])
        assert (again.exit_code, again.stdout) == (0, "up to date (ics 17.1 already loaded)\n")
        for args, error in [
            ([*base, "--version", "17.1"], "no --index-url, --index-file or --version"),
            (["refresh", "--collection", ICS], "--collection and --user go with --taxii"),
            ([*base, "--domain", "mobile"], "no mobile ATT&CK collection"),
        ]:
            failed = runner.invoke(app, args)
            assert failed.exit_code == 1 and isinstance(failed.exception, KbmapError)
            assert error in str(failed.exception)
        monkeypatch.setenv("KBMAP_TAXII_PASSWORD", "wrong")
        get_settings.cache_clear()
        denied = runner.invoke(app, base)
        assert denied.exit_code == 1 and isinstance(denied.exception, Unauthorized)
    finally:
        get_settings.cache_clear()


# ---- a hostile server ------------------------------------------------------------------------------


Answer = tuple[int, str, bytes]  # status, content type, body


class Hostile:
    """A scripted HTTP server: the TAXII paths answer like a server would, `objects` as told."""

    def __init__(self, objects: Callable[[int], Answer], root: Answer | None = None) -> None:
        self.requests: list[str] = []
        owner = self
        self.objects = objects
        self.root = root

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                status, kind, body = owner.answer(self.path.split("?")[0])
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def answer(self, path: str) -> Answer:
        media = "application/taxii+json;version=2.1"
        if path == "/api/":
            return self.root or (200, media, b'{"title": "t", "versions": ["x"]}')
        if path == "/api/collections/":
            coll = {"id": ICS, "title": "ICS ATT&CK", "can_read": True, "can_write": False}
            return 200, media, json.dumps({"collections": [coll]}).encode()
        n = sum(1 for r in self.requests if "/objects/" in r)
        return self.objects(n)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _envelope(objects: list[Any], more: bool = False, nxt: str | None = "1") -> Answer:
    doc: dict[str, Any] = {"objects": objects, "more": more}
    if more and nxt is not None:
        doc["next"] = nxt
    return 200, "application/taxii+json;version=2.1", json.dumps(doc).encode()


COLLECTION_OBJ = {
    "type": "x-mitre-collection",
    "id": ICS,
    "name": "ICS ATT&CK",
    "x_mitre_version": "17.1",
    "modified": "2025-05-06T14:00:00.188Z",
    "x_mitre_contents": [],
}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("case", "objects", "root", "error", "message"),
    [
        ("html", None, (200, "text/html", b"<html/>"), InvalidInput, "answered text/html"),
        ("no type", None, (200, "", b"{}"), InvalidInput, "answered no media type"),
        (
            "not JSON",
            None,
            (200, "application/taxii+json;version=2.1", b"\x00 not json"),
            InvalidInput,
            "not valid JSON",
        ),
        (
            "UTF-16",
            None,
            (200, "application/taxii+json", '{"title": "t"}'.encode("utf-16")),
            InvalidInput,
            "not valid JSON",
        ),
        (
            "deep",
            None,
            (200, "application/taxii+json", b"[" * 5000 + b"]" * 5000),
            InvalidInput,
            "not valid JSON",
        ),
        ("not STIX", lambda n: _envelope([1, 2]), None, InvalidInput, "objects[0] is not a STIX"),
        (
            "endless empty pages",
            lambda n: _envelope([], more=True, nxt=str(n)),
            None,
            InvalidInput,
            "says there is more but sent no object it had not sent",
        ),
        (
            "the same page again",
            lambda n: _envelope([COLLECTION_OBJ], more=True, nxt=str(n)),
            None,
            InvalidInput,
            "says there is more but sent no object it had not sent",
        ),
        (
            "more without next",
            lambda n: _envelope([COLLECTION_OBJ], more=True, nxt=None),
            None,
            InvalidInput,
            "says there is more but sent no next page",
        ),
        (
            "no release",
            lambda n: _envelope([{"type": "identity", "id": "identity--1"}]),
            None,
            InvalidInput,
            "no x-mitre-collection object: not an ATT&CK release",
        ),
        (
            "huge page",
            lambda n: _envelope([{**COLLECTION_OBJ, "pad": "x" * 400_000}]),
            None,
            TooLarge,
            "over the limit of",
        ),
        ("500s", lambda n: (500, "text/plain", b"busy"), None, Unavailable, "server answered 500"),
    ],
)
def test_hostile_server(
    case: str,
    objects: Callable[[int], Answer] | None,
    root: Answer | None,
    error: type[Exception],
    message: str,
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, limits=Limits(max_bundle_bytes=300_000))
    eng = make_engine(settings.database_url)
    init_db(eng)
    hostile = Hostile(objects or (lambda n: _envelope([])), root)
    try:
        with pytest.raises(error) as info:
            run(eng, settings, hostile.base, user=None)
        assert message in str(info.value), str(info.value)
        assert sum(1 for r in hostile.requests if "/objects/" in r) <= 3  # bounded, not 100 pages
        assert counts(eng) == (0, 0)
    finally:
        hostile.close()
        eng.dispose()
