"""MCP fixtures: the SDK's own clients on kbmap's server, over stdio (a `kbmap mcp` process) or in
process, and helpers that read a tool's answer the way an assistant gets it.

Expected values come from the API's answer to the same question (`catalog_client`) or from the
raw catalog tarballs and bundles, never from app.mcp.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from fastapi.testclient import TestClient
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import CallToolResult

from app.core.config import Limits, Settings
from tests.conftest import ROOT
from tests.environment.conftest import ENDPOINTS, peer_file

T = TypeVar("T")
ENVIRONMENT = "sample"
API = "/api/v1"


def run(session: Callable[[Client], Awaitable[T]], server: Any) -> T:
    """One client session on `server` (an MCPServer, a URL, stdio parameters or a transport)."""

    async def main() -> T:
        async with Client(server) as client:
            return await session(client)

    return anyio.run(main)


def stdio_server(database_url: str, **env: str) -> StdioServerParameters:
    """`kbmap mcp` as an assistant starts it: a process on KBMAP_DATABASE_URL."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "app.cli.main", "mcp"],
        env={**os.environ, "KBMAP_DATABASE_URL": database_url, **env},
        cwd=str(ROOT),
    )


def answer(result: CallToolResult) -> Any:
    """A JSON tool's answer: its structured content, checked to be what its text says."""
    assert not result.is_error, result.content
    text = result.content[0].text  # type: ignore[union-attr]
    assert json.loads(text) == result.structured_content
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result
    return str(result.content[0].text)  # type: ignore[union-attr]


def markdown(result: CallToolResult) -> str:
    assert not result.is_error, result.content
    return str(result.content[0].text)  # type: ignore[union-attr]


def upload_environment(client: Any) -> None:
    """The DeTT&CT endpoints sample as environment `sample`, through the API."""
    r = client.put(
        f"{API}/environments/{ENVIRONMENT}",
        files={"file": ("env.yaml", peer_file(ENDPOINTS))},
    )
    assert r.status_code in (200, 201), r.text


def db_path(database_url: str) -> Path:
    return Path(database_url.removeprefix("sqlite:///"))


@pytest.fixture(scope="module")
def module_settings(
    catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings on this module's own copy of the catalog database (reads only, and one
    environment upload)."""
    target = tmp_path_factory.mktemp("mcp") / "kbmap.sqlite"
    shutil.copy(catalog_sqlite_file, target)
    return Settings(database_url=f"sqlite:///{target}", environment="test", limits=Limits())


@pytest.fixture(scope="module")
def api_client(module_settings: Settings) -> Iterator[TestClient]:
    """The app on the module's database with a write token, and the sample environment."""
    from app.auth.service import create_token
    from app.main import create_app

    with TestClient(create_app(module_settings)) as c:
        _, token = create_token(
            c.app.state.engine, module_settings, name="mcp-writer", scopes=["write"]
        )
        c.headers["Authorization"] = f"Bearer {token}"
        upload_environment(c)
        yield c
