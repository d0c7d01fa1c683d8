"""Environment routes: create, replace, list, show, delete, write guards, environment= on coverage,
hostile uploads, all-or-nothing re-import and two first imports at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from app.auth.service import create_token
from app.core.config import Limits, Settings
from app.environment import importing as environment_importing
from tests.environment.conftest import (
    API,
    ENDPOINTS,
    ICS,
    coverage,
    engine_of,
    make_client,
    module_settings,
    peer_file,
    upload,
)

STATES = {"effective", "rule_without_telemetry", "telemetry_only", "blind", "unknown"}


def _doc(*components: str, system: str = "Windows workstations") -> bytes:
    sources = [{"data_component": c} for c in components]
    doc = {"systems": [{"name": system, "platforms": ["Windows"], "log_sources": sources}]}
    return yaml.safe_dump(doc).encode()


def _post(client: TestClient, name: str, data: bytes, **kw: Any) -> Any:
    return client.post(
        f"{API}/environments", files={"file": ("env.yaml", data)}, data={"name": name}, **kw
    )


def test_create_replace_list_show_delete(env_client: TestClient) -> None:
    first = _post(env_client, "crud", _doc("Process Creation"))
    assert first.status_code == 201, first.text
    assert first.json()["revision"] == 1
    again = _post(env_client, "crud", _doc("Process Creation"))
    assert again.status_code == 409, again.text
    assert "crud" in again.json()["error"]["message"]
    put = env_client.put(
        f"{API}/environments/crud", files={"file": ("env.yaml", _doc("File Creation"))}
    )
    assert put.status_code == 200, put.text
    assert put.json()["revision"] == 2
    [system] = put.json()["systems"]
    assert [ls["data_components"] for ls in system["log_sources"]] == [["File Creation"]]
    listed = env_client.get(f"{API}/environments").json()
    assert "crud" in [e["name"] for e in listed]
    shown = env_client.get(f"{API}/environments/crud")
    assert shown.status_code == 200 and shown.json() == put.json()
    gone = env_client.delete(f"{API}/environments/crud")
    assert gone.status_code == 204
    assert env_client.get(f"{API}/environments/crud").status_code == 404
    assert env_client.delete(f"{API}/environments/crud").status_code == 404
    assert "crud" not in [e["name"] for e in env_client.get(f"{API}/environments").json()]


def test_put_of_a_new_name_creates(env_client: TestClient) -> None:
    r = env_client.put(
        f"{API}/environments/put-new", files={"file": ("env.yaml", _doc("Process Creation"))}
    )
    assert r.status_code == 201, r.text


def test_writes_need_a_write_token(env_client: TestClient, env_settings: Settings) -> None:
    upload(env_client, "guarded", _doc("Process Creation"))
    files = {"file": ("env.yaml", _doc("File Creation"))}
    _, reader = create_token(
        engine_of(env_client),
        env_settings,
        name="env-reader",
        scopes=["read"],
    )
    for auth, codes in (
        ({"Authorization": ""}, {401}),
        ({"Authorization": f"Bearer {reader}"}, {403}),
    ):
        assert (
            _post(env_client, "guarded-2", _doc("Process Creation"), headers=auth).status_code
            in codes
        )
        r = env_client.put(f"{API}/environments/guarded", files=files, headers=auth)
        assert r.status_code in codes, r.text
        assert env_client.delete(f"{API}/environments/guarded", headers=auth).status_code in codes
    shown = env_client.get(f"{API}/environments/guarded").json()
    assert shown["revision"] == 1
    assert env_client.get(f"{API}/environments/guarded-2").status_code == 404


def test_unknown_environment_is_a_404_listing_the_known(env_client: TestClient) -> None:
    upload(env_client, "known-one", _doc("Process Creation"))
    r = env_client.get(f"{API}/coverage", params={"environment": "nope"})
    assert r.status_code == 404, r.text
    message = r.json()["error"]["message"]
    assert "nope" in message
    for e in env_client.get(f"{API}/environments").json():
        assert e["name"] in message


def test_coverage_reads_an_environment_in_its_own_domain(env_client: TestClient) -> None:
    """No domain given: an ICS environment is read against ICS, not the enterprise default; a
    domain given wins."""
    upload(env_client, "plant", peer_file(ICS), "data-sources-ics.yaml")
    assert env_client.get(f"{API}/coverage").json()["domain"] == "enterprise"
    assert coverage(env_client, "plant")["domain"] == "ics"
    assert coverage(env_client, "plant", domain="enterprise")["domain"] == "enterprise"
    r = env_client.get(f"{API}/environments/plant/next")
    assert r.status_code == 200, r.text


def test_technique_rows_carry_state_and_missing_log_sources(
    env_client: TestClient, sample_env: dict[str, Any]
) -> None:
    r = env_client.get(
        f"{API}/coverage/techniques",
        params={"environment": sample_env["name"], "catalog": "sigma-attack18", "limit": "1000"},
    )
    assert r.status_code == 200, r.text
    rows = r.json()["items"]
    assert rows
    assert {row["state"] for row in rows} <= STATES
    assert all(isinstance(row["missing_log_sources"], list) for row in rows)
    silent = [row for row in rows if row["state"] == "rule_without_telemetry"]
    assert silent and all(row["missing_log_sources"] for row in silent)
    blind = [row for row in rows if row["state"] in ("blind", "telemetry_only")]
    assert all(row["missing_log_sources"] == [] and not row["covered"] for row in blind)
    plain = env_client.get(f"{API}/coverage/techniques", params={"limit": "5"}).json()["items"]
    assert all(row["state"] is None for row in plain)


# ---- hostile uploads ----


def test_utf16_dettect_file_imports_the_same(
    env_client: TestClient, sample_env: dict[str, Any]
) -> None:
    text = peer_file(ENDPOINTS).decode("utf-8")
    for encoding in ("utf-16", "utf-16-le"):
        data = text.encode(encoding)
        if encoding == "utf-16-le":
            data = b"\xff\xfe" + data  # a BOM, as Windows editors write it
        env = upload(env_client, f"utf16-{encoding}", data, ENDPOINTS.name)
        assert env["systems"] == sample_env["systems"]
        assert env["report"] == sample_env["report"]


@pytest.fixture
def small_limit_client(catalog_sqlite_file: Path, tmp_path: Path) -> Iterator[TestClient]:
    """The app with a 10 MB upload limit, so a 20 MB file is over it."""
    limits = Limits(max_upload_bytes=10 * 1024 * 1024)
    yield from make_client(module_settings(tmp_path, catalog_sqlite_file, limits))


def test_file_over_the_upload_limit_is_413(small_limit_client: TestClient) -> None:
    head = b"systems:\n  - name: a\n    platforms: [Windows]\n    log_sources:\n"
    line = b"      - data_component: Process Creation\n"
    big = head + line * (20 * 1024 * 1024 // len(line))
    assert len(big) >= 20 * 1024 * 1024 - len(line)
    for method in ("post", "put"):
        url = f"{API}/environments" + ("/big" if method == "put" else "")
        r = getattr(small_limit_client, method)(url, files={"file": ("big.yaml", big)})
        assert r.status_code == 413, (method, r.text[:300])
        assert r.json()["error"]["code"]
    assert small_limit_client.get(f"{API}/environments/big").status_code == 404


@pytest.mark.parametrize(
    ("file_name", "data"),
    [
        ("deep.yaml", b"systems: " + b"[" * 5000 + b"]" * 5000 + b"\n"),
        ("deep.json", b'{"systems": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        ("deep-map.yaml", b"systems:\n" + b"".join(b"  " * i + b"k:\n" for i in range(1, 3000))),
    ],
    ids=["yaml-flow", "json", "yaml-block"],
)
def test_deep_nesting_is_refused(env_client: TestClient, file_name: str, data: bytes) -> None:
    r = env_client.put(f"{API}/environments/deep", files={"file": (file_name, data)})
    assert 400 <= r.status_code < 500, r.text[:300]
    assert r.json()["error"]["message"]
    assert env_client.get(f"{API}/environments/deep").status_code == 404


@pytest.mark.parametrize("char", ["\x07", "\x00", "\x1b", "\u0085"])
def test_control_characters_in_a_system_name_are_refused(env_client: TestClient, char: str) -> None:
    doc = {"systems": [{"name": f"work{char}station", "platforms": ["Windows"]}]}
    data = yaml.safe_dump(doc).encode()  # YAML escapes them: the parsed name holds the character
    r = env_client.put(f"{API}/environments/ctl", files={"file": ("ctl.yaml", data)})
    assert 400 <= r.status_code < 500, r.text[:300]
    assert "systems[0].name" in r.text
    csv = f"system,platforms\nwork{char}station,Windows\n".encode()
    r = env_client.put(f"{API}/environments/ctl", files={"file": ("ctl.csv", csv)})
    assert 400 <= r.status_code < 500, r.text[:300]


def test_failed_reimport_leaves_the_environment_unchanged(env_client: TestClient) -> None:
    before = upload(env_client, "atomic", _doc("Process Creation", "File Creation"))
    broken = _doc("Process Creation").replace(b"log_sources", b"log_sorces")
    r = env_client.put(f"{API}/environments/atomic", files={"file": ("env.yaml", broken)})
    assert r.status_code == 422, r.text
    assert "log_sorces" in r.text
    # valid YAML whose second system repeats the first: refused whole, nothing replaced
    dup = yaml.safe_dump(
        {
            "systems": [
                {
                    "name": "A",
                    "platforms": ["Windows"],
                    "log_sources": [{"data_component": "DC0032"}],
                },
                {"name": "a", "platforms": ["Linux"]},
            ]
        }
    ).encode()
    r = env_client.put(f"{API}/environments/atomic", files={"file": ("env.yaml", dup)})
    assert r.status_code == 422, r.text
    after = env_client.get(f"{API}/environments/atomic").json()
    assert after == before


def test_two_first_imports_at_once_one_201_one_409(
    env_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # both imports choose their release, then wait for each other: neither has written yet, so
    # each sees no environment `race` and goes on to create it
    barrier = threading.Barrier(2, timeout=30)
    pick = environment_importing.pick_release

    def pick_then_wait(*args: Any, **kwargs: Any) -> Any:
        found = pick(*args, **kwargs)
        barrier.wait()
        return found

    monkeypatch.setattr(environment_importing, "pick_release", pick_then_wait)
    codes: list[int] = []
    bodies: list[Any] = []

    def run(component: str) -> None:
        r = _post(env_client, "race", _doc(component))
        codes.append(r.status_code)
        bodies.append(r.json())

    threads = [
        threading.Thread(target=run, args=(c,)) for c in ("Process Creation", "File Creation")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == [201, 409], bodies
    loser = bodies[codes.index(409)]
    assert "race" in loser["error"]["message"]
    winner = bodies[codes.index(201)]
    shown = env_client.get(f"{API}/environments/race").json()
    assert shown["revision"] == 1
    assert shown["systems"] == winner["systems"]
