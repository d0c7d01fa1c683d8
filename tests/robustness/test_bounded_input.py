"""Bounded input: every oversized or hostile input is a 4xx naming the problem (API) or one line
and a non-zero exit (CLI), and changes no row.

Complements tests/catalog/test_routes.py (a `../` member, bad YAML, unknown format),
tests/attack/test_stix.py (truncated gzip, oversize bundle in the parser), tests/layer/test_importer.py
(a layer nested too deep) and tests/catalog/formats/test_sigma.py (an alias bomb in a Sigma tree);
limits are set small through Settings(limits=Limits(...)) or KBMAP_LIMIT_* for the CLI.
"""

from __future__ import annotations

import asyncio
import gzip
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.service import create_token
from app.core.config import Limits, Settings
from app.core.db import make_engine
from app.main import create_app
from tests.conftest import attack_file
from tests.robustness.support import SIGMA_RULE, alias_bomb, kbmap, link, row_counts, tar_bytes

SMALL = Limits(
    max_upload_bytes=20_000,
    max_archive_members=5,
    max_archive_bytes=60_000,
    max_member_bytes=4_000,
    max_page=25,
)
PWNED_MARK = "kbmap-robustness-pwned"


@pytest.fixture
def small(catalog_settings: Settings) -> Settings:
    return catalog_settings.model_copy(update={"limits": SMALL})


@pytest.fixture
def client(small: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(small)) as c:
        _, token = create_token(c.app.state.engine, small, name="robust-admin", scopes=["admin"])
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


@pytest.fixture
def counts(client: TestClient) -> Iterator[dict[str, int]]:
    """Row counts before the test; after it they must be the same."""
    engine = client.app.state.engine  # type: ignore[attr-defined]
    before = row_counts(engine)
    assert before["catalog"] == 4 and before["release"] == 4
    yield before
    assert row_counts(engine) == before


def upload(client: TestClient, name: str, data: bytes, **form: str) -> Any:
    return client.post("/api/v1/catalogs", files={"file": (name, data)}, data=form)


def refused(r: Any, status: int, code: str, *needles: str) -> dict[str, Any]:
    """A 4xx JSON error whose message (or its first issue) names the problem."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code, error
    text = error["message"] + " " + " ".join(i["message"] for i in error["issues"])
    for needle in needles:
        assert needle in text, (needle, error)
    return error


# --- uploads -----------------------------------------------------------------------------------


def test_upload_over_the_limit_is_413(client: TestClient, counts: dict[str, int]) -> None:
    body = b"name: big\nrules:\n" + b"".join(b"  - id: R-%05d\n" % i for i in range(2_000))
    assert len(body) > SMALL.max_upload_bytes
    error = refused(upload(client, "big.yaml", body), 413, "too_large", "limit of 20000 bytes")
    assert error["location"]["file"] == "big.yaml"
    # a gzip that inflates past the member limit is refused while inflating
    bomb = gzip.compress(b"name: big\n" + b"#" * 2_000_000)
    assert len(bomb) < SMALL.max_upload_bytes
    refused(upload(client, "big.yaml.gz", bomb), 413, "too_large", "exceeds the limit")


def _raw_upload(
    app: FastAPI, size: int, *, content_length: bool, token: str | None
) -> tuple[int, dict[str, Any], int]:
    """POST a multipart body of `size` bytes in 64 KiB chunks straight through ASGI; returns the
    status, the JSON body and how many chunks the app read."""
    head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.yaml"\r\n\r\n'
    chunk = b"#" * 65536
    chunks = [head] + [chunk] * (size // len(chunk)) + [b"\r\n--B--\r\n"]
    headers = [(b"content-type", b"multipart/form-data; boundary=B"), (b"host", b"127.0.0.1")]
    if content_length:
        headers.append((b"content-length", str(sum(map(len, chunks))).encode()))
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/catalogs",
        "raw_path": b"/api/v1/catalogs",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read >= len(chunks):
            await asyncio.sleep(3600)
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    import orjson

    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], orjson.loads(body), read


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
def test_a_huge_body_is_refused_before_it_is_read(
    client: TestClient, counts: dict[str, int], content_length: bool
) -> None:
    """FastAPI parses a form before any dependency runs: without a cap on the body, an anonymous
    client could stream gigabytes to disk for a POST that then answers 401."""
    app = client.app
    assert isinstance(app, FastAPI)
    size = 8 << 20  # 8 MiB against a 20 kB upload limit (+ 1 MiB for the form)
    for token in (None, client.headers["Authorization"].removeprefix("Bearer ")):
        status, body, read = _raw_upload(app, size, content_length=content_length, token=token)
        assert (status, body["error"]["code"]) == (413, "too_large"), body
        assert "exceeds the upload limit of 20000 bytes" in body["error"]["message"]
        assert read * 65536 < (2 << 20), f"read {read} chunks of a refused body"


@pytest.mark.parametrize(
    ("members", "status", "code", "needle"),
    [
        (
            [(f"rules/r{i}.yml", SIGMA_RULE) for i in range(6)],
            413,
            "too_large",
            "more than 5 members",
        ),
        ([("rules/big.yml", SIGMA_RULE + b"#" * 5_000)], 413, "too_large", "is over 4000 bytes"),
        (
            [(f"rules/r{i}.yml", SIGMA_RULE + b"#" * 3_900) for i in range(5)]
            + [("rules/z.yml", b"#" * 200_000)],  # compresses well, inflates past 60 kB
            413,
            "too_large",
            "exceeds the limit of 60000 bytes",
        ),
        ([("/etc/cron.d/x.yml", SIGMA_RULE)], 422, "invalid_input", "escapes the archive"),
        ([("rules/a/../../../x.yml", SIGMA_RULE)], 422, "invalid_input", "escapes the archive"),
        ([("rules\\..\\..\\x.yml", SIGMA_RULE)], 422, "invalid_input", "escapes the archive"),
        (
            [("rules/a.yml", SIGMA_RULE), link("rules/b.yml", "/etc/passwd")],
            422,
            "invalid_input",
            "is a link or device",
        ),
        (
            [link("rules/b.yml", "rules/a.yml", tarfile.LNKTYPE)],
            422,
            "invalid_input",
            "is a link or device",
        ),
        ([link("rules/dev.yml", "", tarfile.CHRTYPE)], 422, "invalid_input", "is a link or device"),
        (
            [link("rules/fifo.yml", "", tarfile.FIFOTYPE)],
            422,
            "invalid_input",
            "is a link or device",
        ),
    ],
    ids=[
        "members",
        "member-size",
        "total-size",
        "absolute",
        "dotdot",
        "backslash",
        "symlink",
        "hardlink",
        "device",
        "fifo",
    ],
)
def test_hostile_archives_are_refused(
    client: TestClient,
    counts: dict[str, int],
    members: list[Any],
    status: int,
    code: str,
    needle: str,
) -> None:
    error = refused(upload(client, "rules.tar.gz", tar_bytes(members)), status, code, needle)
    assert error["location"]["file"] == "rules.tar.gz"


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("bomb.yaml", alias_bomb(), "YAML aliases repeat more than"),
        (
            "many.yaml",
            b"a: &a x\nb: [" + b", ".join([b"*a"] * 101) + b"]\nname: m\nrules: []\n",
            "more than 100 YAML aliases",
        ),
        (
            "loop.yaml",
            b"name: loop\nrules:\n  - &r {id: R-1, techniques: [*r]}\n",
            "refers to a node that contains it",
        ),
        (
            "py.yaml",
            b"name: py\nrules:\n  - id: !!python/object/apply:os.system ['touch /tmp/"
            + PWNED_MARK.encode()
            + b"']\n",
            "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply",
        ),
        ("py2.yaml", b"!!python/name:os.system\n", "could not determine a constructor"),
        (
            "deep.json",
            b'{"name": "deep", "rules": [{"id": "R-1", "x": ' + b"[" * 80 + b"]" * 80 + b"}]}",
            "nesting is deeper than 64 levels",
        ),
        ("deeper.json", b"[" * 5000 + b"]" * 5000, "not valid JSON"),
        (
            "deep.yaml",
            b"name: deep\nrules:\n  - id: R-1\n    x: " + b"[" * 80 + b"]" * 80 + b"\n",
            "nesting is deeper than 64 levels",
        ),
    ],
    ids=[
        "alias-bomb",
        "alias-count",
        "alias-loop",
        "python-tag",
        "python-name",
        "deep-json",
        "json-over-1024",
        "deep-yaml",
    ],
)
def test_hostile_documents_are_refused(
    client: TestClient, counts: dict[str, int], name: str, data: bytes, needle: str
) -> None:
    error = refused(upload(client, name, data, format="canonical"), 422, "invalid_input", needle)
    assert error["location"]["file"] == name or error["issues"][0]["location"]["file"] == name
    assert not Path("/tmp", PWNED_MARK).exists()


# --- query strings and pages -------------------------------------------------------------------


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in app.openapi()["paths"].items()
        for method, op in ops.items()
    ]


def _bounded(schema: dict[str, Any]) -> bool:
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    return all(
        s.get("type") not in ("string", "array")
        or any(k in s for k in ("maxLength", "maxItems", "enum", "const", "format"))
        or str(s.get("pattern", "")).endswith("}$")
        for s in options
    )


def test_every_text_parameter_is_bounded(client: TestClient) -> None:
    """Each string or list parameter of every route declares a bound (length, items, choices)."""
    app = client.app
    assert isinstance(app, FastAPI)
    loose = [
        f"{m} {p} {prm['name']}"
        for m, p, op in _operations(app)
        for prm in op.get("parameters", [])
        if not _bounded(prm["schema"])
    ]
    assert loose == []


def test_over_long_query_strings_are_422(client: TestClient, counts: dict[str, int]) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    with_q = [
        p
        for m, p, op in _operations(app)
        if m == "GET" and any(x["name"] == "q" for x in op.get("parameters", []))
    ]
    assert {"/api/v1/techniques", "/api/v1/rules"} <= set(with_q)
    for path in with_q:
        error = refused(
            client.get(path, params={"q": "x" * 10_000}), 422, "invalid_input", "at most"
        )
        assert error["location"]["field"] == "query.q", path
    refused(client.get("/api/v1/techniques/" + "T1" * 5_000), 422, "invalid_input", "at most 40")
    refused(
        client.get("/api/v1/rules", params={"catalog": ["sigma"] * 500}),
        422,
        "invalid_input",
        "at most 20",
    )
    refused(client.get("/api/v1/coverage", params={"version": "1" * 10_000}), 422, "invalid_input")
    r = client.get("/api/v1/rules", params={"technique": "T1059.001", "q": "x" * 200})
    assert r.status_code == 200 and r.json()["total"] == 0  # the bound itself is accepted


def test_every_list_caps_its_page(client: TestClient) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    paged = [
        p
        for m, p, op in _operations(app)
        if m == "GET"
        and any(x["name"] == "limit" for x in op.get("parameters", []))
        and not any(x.get("required") for x in op.get("parameters", []))
    ]
    assert len(paged) >= 12
    for path in paged:
        r = client.get(path, params={"limit": 10**9})
        assert r.status_code == 200, (path, r.text)
        body = r.json()
        assert body["limit"] == SMALL.max_page, path
        assert len(body["items"]) <= SMALL.max_page, path
    refused(client.get("/api/v1/rules", params={"limit": 0}), 422, "invalid_input")
    refused(client.get("/api/v1/rules", params={"offset": 10**12}), 422, "invalid_input")


# --- the CLI -----------------------------------------------------------------------------------


def _one_line(proc: Any, *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kbmap: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    return str(lines[0])


def test_cli_refuses_hostile_catalogs_in_one_line(
    catalog_settings: Settings, tmp_path: Path
) -> None:
    db = catalog_settings.database_url
    engine = make_engine(db)
    before = row_counts(engine)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"name: big\nrules:\n" + b"  - id: R-1\n" * 200)
    _one_line(
        kbmap("catalog", "import", str(big), db=db, env={"KBMAP_LIMIT_MAX_UPLOAD_BYTES": "1000"}),
        f"kbmap: {big}: size exceeds the limit of 1000 bytes",
    )
    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(tar_bytes([("rules/a.yml", SIGMA_RULE), link("rules/b.yml", "/etc/shadow")]))
    _one_line(
        kbmap("catalog", "import", str(evil), db=db), str(evil), "'rules/b.yml' is a link or device"
    )
    bomb = tmp_path / "bomb.yaml"
    bomb.write_bytes(alias_bomb())
    _one_line(
        kbmap("catalog", "import", str(bomb), db=db), "bomb.yaml", "YAML aliases repeat more than"
    )
    tagged = tmp_path / "py.yaml"
    tagged.write_bytes(
        b"name: py\nrules:\n  - id: !!python/object/apply:os.system ['touch /tmp/"
        + PWNED_MARK.encode()
        + b"']\n"
    )
    _one_line(
        kbmap("catalog", "import", str(tagged), db=db), "py.yaml, line 3", "python/object/apply"
    )
    assert not Path("/tmp", PWNED_MARK).exists()
    assert row_counts(engine) == before
    engine.dispose()


def test_cli_refuses_an_oversized_bundle(catalog_settings: Settings, tmp_path: Path) -> None:
    """KBMAP_LIMIT_MAX_BUNDLE_BYTES bounds the file read and its gunzipped size (a gzip bomb)."""
    db = catalog_settings.database_url
    engine = make_engine(db)
    before = row_counts(engine)
    ics = attack_file("ics-attack-18.1.json.gz")
    # ICS 18.1 is ~0.3 MB packed, ~4 MB unpacked
    limit = {"KBMAP_LIMIT_MAX_BUNDLE_BYTES": "2000000"}
    _one_line(
        kbmap("ingest", ics, "--replace", db=db, env=limit),
        ics,
        "uncompressed size exceeds the limit of 2000000 bytes",
    )
    bomb = tmp_path / "enterprise-attack-99.1.json.gz"
    bomb.write_bytes(
        gzip.compress(b'{"type": "bundle", "objects": [' + b" " * 50_000_000 + b"]}", 1)
    )
    _one_line(kbmap("ingest", str(bomb), db=db, env=limit), "uncompressed size exceeds the limit")
    plain = tmp_path / "enterprise-attack-98.1.json"
    with open(plain, "wb") as fh:
        fh.write(b'{"type": "bundle", "objects": [' + b" " * 3_000_000 + b"]}")
    _one_line(
        kbmap("ingest", str(plain), db=db, env=limit), "size exceeds the limit of 2000000 bytes"
    )
    assert row_counts(engine) == before
    engine.dispose()
