"""The technique page as Markdown, /techniques/{id}.md: the MCP tool's text for the same question,
served as a Markdown download, reached despite the page route `/techniques/{attack_id}`, and
linked from the technique page."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.core.config import Settings
from app.core.db import make_engine
from app.main import create_app
from app.mcp import tools
from tests import rawdata
from tests.web.dom import parse


@pytest.fixture(scope="module")
def settings(catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    db = tmp_path_factory.mktemp("markdown-export") / "kbmap.sqlite"
    shutil.copy(catalog_sqlite_file, db)
    return Settings(database_url=f"sqlite:///{db}", environment="test")


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def engine(settings: Settings) -> Iterator[Engine]:
    e = make_engine(settings.database_url)
    yield e
    e.dispose()


CASES = [
    ("T1550.001", {}),
    ("T1550.001", {"version": "17.1"}),
    ("T1059", {"catalog": ["sigma-attack18"]}),
    ("T1003.001", {"version": "18.1", "domain": "enterprise", "catalog": ["open-xp-rules"]}),
]


@pytest.mark.parametrize(("tid", "params"), CASES)
def test_export_equals_the_mcp_technique_page(
    client: TestClient, engine: Engine, settings: Settings, tid: str, params: dict[str, object]
) -> None:
    r = client.get(f"/techniques/{tid}.md", params=params)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"] == "text/markdown; charset=utf-8"
    version = str(params.get("version", "18.1"))
    assert r.headers["content-disposition"] == (
        f'attachment; filename="{tid}-enterprise-{version}.md"'
    )
    mcp = tools.technique_page(
        engine,
        settings,
        attack_id=tid,
        domain=params.get("domain"),  # type: ignore[arg-type]
        version=params.get("version"),  # type: ignore[arg-type]
        catalogs=params.get("catalog"),  # type: ignore[arg-type]
    )
    assert r.text == mcp
    name = rawdata.by_ext_id(f"enterprise-attack-{version}.json.gz", "attack-pattern", tid)["name"]
    assert r.text.startswith(f"# {tid} {name}\n")
    assert f"ATT&CK enterprise {version} " in r.text


def test_catalog_filter_changes_the_rules_listed(client: TestClient) -> None:
    one = client.get("/techniques/T1550.001.md", params={"catalog": "maxpatrol-siem"}).text
    every = client.get("/techniques/T1550.001.md").text
    assert "- maxpatrol-siem: " in one and "- sigma: " not in one
    assert "- sigma: " in every


def test_the_page_route_still_serves_html(client: TestClient) -> None:
    r = client.get("/techniques/T1550.001")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")


def test_unknown_technique_is_an_html_404(client: TestClient) -> None:
    r = client.get("/techniques/T9999.md")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "T9999" in r.text


def test_the_technique_page_links_its_markdown(client: TestClient) -> None:
    doc = parse(client.get("/techniques/T1550.001?version=17.1&catalog=sigma").text)
    link = doc.by_id("markdown-export")
    href = link.attrs["href"]
    assert href.startswith("/techniques/T1550.001.md?")
    assert "version=17.1" in href and "catalog=sigma" in href
    r = client.get(href)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
    assert "ATT&CK enterprise 17.1" in r.text and "- sigma-attack18: " not in r.text


def test_mcp_and_web_share_one_renderer() -> None:
    from app.technique_page import markdown

    assert tools.technique_markdown is markdown.technique_markdown
