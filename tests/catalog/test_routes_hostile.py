"""Hostile catalogs through the API: refused, or neutralised so no shared read fails."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from app.auth.service import create_token
from app.core.bounded_yaml import MAX_ALIAS_NODES
from app.core.config import Settings
from app.main import create_app

SIGMA = {"format": "sigma"}
LAYER_ROUTES = ("/api/v1/layers/coverage", "/api/v1/layers/coverage.svg")


def billion_laughs(levels: int) -> str:
    """A Sigma rule whose title is `levels` nested lists of nine aliases each."""
    lines = ['title: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        cur, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("title: *" + chr(ord("a") + levels - 1))
    return "\n".join(lines[:1] + lines[1:]) + (
        "\nid: bomb-1\ntags: [attack.t1059]\nlogsource: {product: windows}\n"
        "detection: {sel: {x: 1}, condition: sel}\n"
    )


@pytest.fixture
def writer(loaded_settings: Settings) -> Iterator[TestClient]:
    """The app on a copy of the loaded database, with a write token."""
    with TestClient(create_app(loaded_settings)) as c:
        _, token = create_token(c.app.state.engine, loaded_settings, name="w", scopes=["write"])
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-16", "utf-8-sig", "utf-32"])
def test_alias_bomb_is_refused_in_any_encoding(writer: TestClient, encoding: str) -> None:
    # 9^5 nodes repeated: past the node bound, small enough not to hurt a run without the fix
    assert MAX_ALIAS_NODES < 9**5
    data = billion_laughs(5).encode(encoding)
    r = writer.post(
        "/api/v1/catalogs", files={"file": ("bomb.yml", data)}, data=SIGMA | {"name": "b"}
    )
    assert r.status_code == 422, r.text[:300]
    assert "aliases repeat more than" in r.json()["error"]["message"]
    assert writer.get("/api/v1/catalogs/b").status_code == 404


def test_server_answers_healthz_while_a_bomb_is_refused(writer: TestClient) -> None:
    """The 413-byte UTF-16 bomb of the issue (nine levels): refused quickly, /healthz stays fast."""
    data = billion_laughs(9).encode("utf-16")
    assert len(data) < 1000
    result: dict[str, int] = {}

    def upload() -> None:
        r = writer.post("/api/v1/catalogs", files={"file": ("bomb.yml", data)}, data=SIGMA)
        result["status"] = r.status_code

    thread = threading.Thread(target=upload)
    started = time.monotonic()
    thread.start()
    slowest = 0.0
    while thread.is_alive() and time.monotonic() - started < 30:
        t0 = time.monotonic()
        assert writer.get("/healthz").status_code == 200
        slowest = max(slowest, time.monotonic() - t0)
    thread.join(30)
    assert result == {"status": 422}
    assert time.monotonic() - started < 10
    assert slowest < 2.0


def test_long_aliased_scalar_is_refused(writer: TestClient) -> None:
    text = "x" * 200_000
    doc = (
        f"title: &t {text}\nid: long-1\nlogsource: {{product: windows}}\n"
        "detection: {sel: {x: [*t, *t, *t, *t, *t, *t]}, condition: sel}\n"
    )
    r = writer.post("/api/v1/catalogs", files={"file": ("long.yml", doc.encode())}, data=SIGMA)
    assert r.status_code == 422, r.text[:300]
    assert "characters of text" in r.json()["error"]["message"]


LONG_ID = {"id": "A" * 5000, "title": "long id", "techniques": ["T1059.001"]}
CONTROL_TITLE = {"id": "ctl-1", "title": "bad\x01title\x1b[31mred", "techniques": ["T1059.001"]}
HOSTILE = {"long-id": [LONG_ID], "control-title": [CONTROL_TITLE]}


def _upload(writer: TestClient, rules: list[dict[str, object]]) -> dict[str, Any]:
    """Upload a canonical JSON catalog `hostile` holding `rules`; its import report."""
    doc = json.dumps({"name": "hostile", "rules": rules}).encode()
    r = writer.post("/api/v1/catalogs", files={"file": ("hostile.json", doc)})
    assert r.status_code == 201, r.text[:300]
    report: dict[str, Any] = r.json()["report"]
    return report


def test_hostile_ids_and_titles_are_cleaned_with_a_warning(writer: TestClient) -> None:
    report = _upload(writer, [LONG_ID, CONTROL_TITLE])
    cap = Settings().limits.max_rule_id_chars
    messages = [w["message"] for w in report["warnings"]]
    assert f"rule {'A' * cap!r}: id: cut from 5000 to {cap} characters" in messages
    assert "rule 'ctl-1': title: control characters removed" in messages
    rules = writer.get("/api/v1/rules", params={"catalog": "hostile"}).json()["items"]
    assert sorted(r["rule_id"] for r in rules) == ["A" * cap, "ctl-1"]
    assert [r["title"] for r in rules if r["rule_id"] == "ctl-1"] == ["badtitle[31mred"]


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("route", [*LAYER_ROUTES, "/api/v1/layers/coverage.xlsx"])
def test_one_hostile_rule_does_not_break_shared_layers(
    writer: TestClient, route: str, kind: str
) -> None:
    _upload(writer, HOSTILE[kind])
    rule_id = str(HOSTILE[kind][0]["id"])[: Settings().limits.max_rule_id_chars]
    r = writer.get(route, params={"catalog": "hostile"})
    assert r.status_code == 200, r.text[:300]
    body = r.content
    if route.endswith(".xlsx"):
        sheet = load_workbook(BytesIO(body))["entries"]
        rows = [[str(c.value or "") for c in row] for row in sheet.iter_rows()]
        assert any(row[0] == "T1059.001" and f"hostile {rule_id}:" in row[7] for row in rows)
    elif route.endswith(".svg"):
        assert body.startswith(b"<svg") and body.rstrip().endswith(b"</svg>")
        assert b"<title>T1059 " in body and b"\x01" not in body
    else:
        entry = next(t for t in r.json()["techniques"] if t["techniqueID"] == "T1059.001")
        meta = {m.get("name"): m.get("value") for m in entry["metadata"]}
        assert f"hostile {rule_id}" in meta
        assert "\x01" not in json.dumps(meta, ensure_ascii=False)


def test_a_form_name_with_a_newline_is_refused(writer: TestClient) -> None:
    """As a catalog's own name is: `$` in the name pattern let a trailing newline through."""
    before = writer.get("/api/v1/catalogs").json()
    doc = b"rules:\n  - id: T-1\n    techniques: [T1059.001]\n"
    r = writer.post("/api/v1/catalogs", files={"file": ("t.yaml", doc)}, data={"name": "team\n"})
    assert r.status_code == 422, r.text[:300]
    assert r.json()["error"]["message"] == (
        "catalog name 'team\\n' must be 1-80 letters, digits, '.', '_' or '-'"
    )
    assert writer.get("/api/v1/catalogs").json() == before


def test_two_first_uploads_of_one_name_at_once_give_201_and_409(
    writer: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.catalog import importing as catalog_importing

    barrier = threading.Barrier(2, timeout=30)
    pick = catalog_importing.pick_release

    def pick_then_wait(*args: Any, **kwargs: Any) -> Any:
        found = pick(*args, **kwargs)
        barrier.wait()  # both have looked for `race` and found none before either writes
        return found

    monkeypatch.setattr(catalog_importing, "pick_release", pick_then_wait)
    doc = b"name: race\nrules:\n  - id: R-1\n    techniques: [T1059.001]\n"
    answers: list[tuple[int, dict[str, Any]]] = []

    def upload() -> None:
        r = writer.post("/api/v1/catalogs", files={"file": ("race.yaml", doc)})
        answers.append((r.status_code, r.json()))

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(code for code, _ in answers) == [201, 409]
    conflict = next(body for code, body in answers if code == 409)
    assert conflict["error"]["code"] == "conflict"
    assert "created by another import at the same time" in conflict["error"]["message"]
    assert writer.get("/api/v1/catalogs/race").json()["rule_count"] == 1


def test_csv_export_route_neutralises_formulas(writer: TestClient) -> None:
    doc = 'id,title,description,techniques\nF-1,=1+1,"-2\nsecond line",T1059.001\n'
    r = writer.post("/api/v1/catalogs", files={"file": ("f.csv", doc.encode())}, data={"name": "f"})
    assert r.status_code == 201, r.text[:300]
    out = writer.get("/api/v1/catalogs/f/export", params={"format": "csv"})
    assert out.headers["content-type"].startswith("text/csv")
    assert out.text.splitlines()[-3:] == [
        '"id","name","title","description","package","techniques","tactics","data_sources",'
        '"platforms","references","severity","status","enabled"',
        '"F-1","","\'=1+1","\'-2',
        'second line","","T1059.001","","","","","","","true"',
    ]


@pytest.mark.parametrize("route", [*LAYER_ROUTES, "/api/v1/layers/coverage.xlsx"])
def test_rows_stored_before_the_caps_do_not_break_shared_layers(
    writer: TestClient, route: str
) -> None:
    """A catalog imported before ids and titles were capped and cleaned (its rows written as they
    came) still renders: layers clean what they carry instead of failing for everyone."""
    _upload(writer, [CONTROL_TITLE])
    with writer.app.state.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql(
            "UPDATE rule SET rule_id = ?, title = ? WHERE rule_id = 'ctl-1'",
            ("A" * 5000, "bad\x01title\x1b[31m" + "x" * 20_000),
        )
    r = writer.get(route, params={"catalog": "hostile"})
    assert r.status_code == 200, r.text[:300]
    text = r.text
    if route.endswith(".xlsx"):
        sheet = load_workbook(BytesIO(r.content))["entries"]
        text = "\n".join(str(c.value or "") for row in sheet.iter_rows() for c in row)
    assert route.endswith(".svg") or "hostile AAAA" in text  # the picture names no rules
    assert "\x01" not in text and "\x1b" not in text
