"""`/mcp` on a real server (uvicorn on 127.0.0.1) that requires tokens for reads, driven by the
SDK's streamable-HTTP client: the read scope passes, no token is 401, a token whose scopes do
not reach read is 403, both as the API answers them; a foreign Origin, a huge or malformed body
are refused without harm to the next request."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from app.auth.service import create_token
from app.core.config import Settings
from app.core.db import make_engine
from app.main import create_app
from tests.mcp.conftest import answer, db_path

pytestmark = pytest.mark.integration  # a kbmap process or a uvicorn server

JSONRPC = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@dataclass(frozen=True)
class Served:
    url: str  # the server's root
    read: str  # a read token
    write: str  # a write token (ranks above read)
    other: str  # a token whose only scope is no scope kbmap knows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tokens(settings: Settings) -> tuple[str, str, str]:
    engine = make_engine(settings.database_url)
    tokens = [
        create_token(engine, settings, name=name, scopes=[scope])[1]
        for name, scope in (("mcp-read", "read"), ("mcp-write", "write"), ("mcp-other", "read"))
    ]
    engine.dispose()
    with sqlite3.connect(db_path(settings.database_url)) as db:  # no service makes such a token
        db.execute("UPDATE api_token SET scopes = '[\"metrics\"]' WHERE name = 'mcp-other'")
    return tokens[0], tokens[1], tokens[2]


@pytest.fixture(scope="module")
def served(module_settings: Settings) -> Iterator[Served]:
    settings = module_settings.model_copy(update={"read_auth": "required"})
    read, write, other = _tokens(settings)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield Served(f"http://127.0.0.1:{port}", read, write, other)
    server.should_exit = True
    thread.join(10)


def _with_token(served: Served, token: str | None, calls: list[tuple[str, dict[str, Any]]]) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def main() -> Any:
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(f"{served.url}/mcp", http_client=http)) as client,
        ):
            return [await client.call_tool(name, args) for name, args in calls]

    return anyio.run(main)


def _post(served: Served, body: Any = None, **headers: str) -> httpx2.Response:
    kwargs: dict[str, Any] = {"json": LIST} if body is None else {"content": body}
    return httpx2.post(f"{served.url}/mcp", headers={**JSONRPC, **headers}, timeout=30, **kwargs)


def test_a_read_token_gets_the_apis_answers(served: Served) -> None:
    found = _with_token(
        served,
        served.read,
        [("search_techniques", {"query": "powershell"}), ("coverage_summary", {})],
    )
    auth = {"Authorization": f"Bearer {served.read}"}
    api = httpx2.get(f"{served.url}/api/v1/techniques", params={"q": "powershell"}, headers=auth)
    assert answer(found[0])["total"] == api.json()["total"] > 0
    api = httpx2.get(f"{served.url}/api/v1/coverage", headers=auth)
    assert answer(found[1])["all"] == api.json()["all"]


def test_a_write_token_reads_too(served: Served) -> None:
    (page,) = _with_token(served, served.write, [("technique_page", {"attack_id": "T1003"})])
    assert page.content[0].text.startswith("# T1003 OS Credential Dumping")


def test_no_token_is_refused_by_the_sdk_client_and_401_as_the_api(served: Served) -> None:
    with pytest.raises(BaseException) as caught:  # the SDK raises its error inside a group
        _with_token(served, None, [("coverage_summary", {})])
    assert "Server returned an error response" in repr(caught.value)
    r = _post(served)
    api = httpx2.get(f"{served.url}/api/v1/techniques")
    assert r.status_code == api.status_code == 401
    assert r.json() == api.json() and r.headers["www-authenticate"] == "Bearer"
    wrong = _post(served, Authorization="Bearer kbm_not_a_token")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"


def test_a_token_without_the_read_scope_is_403_as_the_api(served: Served) -> None:
    auth = {"Authorization": f"Bearer {served.other}"}
    r = _post(served, **auth)
    api = httpx2.get(f"{served.url}/api/v1/techniques", headers=auth)
    assert r.status_code == api.status_code == 403
    assert r.json() == api.json()
    assert r.json()["error"]["message"] == "token lacks the read scope"


def test_a_foreign_origin_or_host_is_refused(served: Served) -> None:
    auth = {"Authorization": f"Bearer {served.read}"}
    r = _post(served, Origin="http://evil.example", **auth)
    assert r.status_code == 403 and "evil.example" in r.json()["error"]["message"]
    r = _post(served, Host="evil.example", **auth)
    assert r.status_code == 400 and "evil.example" in r.json()["error"]["message"]
    ok = _post(served, Origin=served.url, **auth)
    assert ok.status_code == 200
    assert len(ok.json()["result"]["tools"]) == 10  # issue 17's nine and search


def test_bodies_too_big_nested_or_not_utf8_change_nothing(served: Served) -> None:
    auth = {"Authorization": f"Bearer {served.read}"}
    big = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "x": "' + b"a" * 300_000 + b'"}'
    r = _post(served, big, **auth)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    nested = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' + b"[" * 50_000
    assert _post(served, nested, **auth).status_code == 400
    utf16 = '{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}'.encode("utf-16")
    assert _post(served, utf16, **auth).status_code == 400
    assert _post(served, **auth).status_code == 200  # and the server still answers
