"""The environment pages (/environments, /environments/{name}), the technique page with
?environment= and the gaps page with environment=, on the DeTT&CT endpoints sample.

Expected values come from the JSON API (GET /environments/{name}, /coverage/techniques, the
next-to-collect route, /techniques/{id}), never from the page code."""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.environment.conftest import (
    API,
    client_with_sample,
    technique_rows,
)

ENV = "Data-sources-sample"
STATES = ("effective", "rule_without_telemetry", "telemetry_only", "blind", "unknown")


@pytest.fixture(scope="module")
def web_client(
    catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The app on a copy of the catalog database with the DeTT&CT endpoints sample imported."""
    yield from client_with_sample(catalog_sqlite_file, tmp_path_factory.mktemp("web-env"), ENV)


def _html(client: TestClient, url: str, status: int = 200, **params: str) -> str:
    r = client.get(url, params=params)
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    return r.text


def _env(client: TestClient) -> dict[str, Any]:
    r = client.get(f"{API}/environments/{ENV}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_home_and_list_link_to_the_environment(web_client: TestClient) -> None:
    home = _html(web_client, "/")
    assert 'href="/environments"' in home
    assert f'href="/environments/{ENV}"' in home
    listing = _html(web_client, "/environments")
    env = _env(web_client)
    assert f'href="/environments/{ENV}"' in listing
    assert f'<td class="num">{len(env["systems"])}</td>' in listing


def test_environment_page_shows_systems_and_what_they_collect(web_client: TestClient) -> None:
    page = html.unescape(_html(web_client, f"/environments/{ENV}"))
    env = _env(web_client)
    assert env["systems"]
    for s in env["systems"]:
        assert f"<td>{s['name']}</td>" in page
        counted = {dc for ls in s["log_sources"] if ls["counted"] for dc in ls["data_components"]}
        for dc in counted:
            assert dc in page, (s["name"], dc)
    for u in env["report"]["unplaced"]:
        assert u["written"] in page and u["reason"] in page


def test_environment_page_legend_counts_the_api_rows(web_client: TestClient) -> None:
    env = _env(web_client)
    version = env["attack_version"]
    page = _html(web_client, f"/environments/{ENV}")
    rows = technique_rows(web_client, ENV, domain=env["domain"], version=version)
    counts = Counter(r["state"] for r in rows)
    legend = re.findall(r'<li data-state="(\w+)">.*?<strong>(\d+)</strong>', page)
    assert [s for s, _ in legend] == list(STATES)
    assert {s: int(n) for s, n in legend} == {s: counts[s] for s in STATES}
    cells = Counter(
        re.findall(
            r'<li class="cell [^"]*" id="cell-[^"]*" data-technique="[^"]+" '
            r'data-score="[^"]*" data-state="(\w+)"',
            page,
        )
    )
    assert set(cells) <= set(STATES) and cells["effective"] > 0
    assert 'data-state="effective"' in page and "<script>" not in page


def test_environment_page_ranks_the_api_top_item_first(web_client: TestClient) -> None:
    env = _env(web_client)
    r = web_client.get(
        f"{API}/environments/{ENV}/next",
        params={"domain": env["domain"], "version": env["attack_version"], "limit": "20"},
    )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items
    page = html.unescape(_html(web_client, f"/environments/{ENV}"))
    rows = re.findall(r'<tr data-rank="(\d+)">(.*?)</tr>', page, re.S)
    assert len(rows) == len(items)
    rank, first = rows[0]
    top = items[0]
    assert int(rank) == top["rank"] == 1
    assert f"<td>{top['system']}</td>" in first and top["data_component"] in first
    cells = re.findall(r'<td class="num"[^>]*>([^<]*)</td>', first)
    assert cells == [str(top["techniques_gained"]), str(top["value"]), str(top["rules_unlocked"])]


def test_unknown_environment_is_a_404_page(web_client: TestClient) -> None:
    page = _html(web_client, "/environments/nowhere", status=404)
    assert ENV in html.unescape(page)
    _html(web_client, "/techniques/T1059.001", status=404, environment="nowhere")


def test_technique_page_says_per_rule_whether_it_fires(web_client: TestClient) -> None:
    r = web_client.get(f"{API}/techniques/T1059.001", params={"environment": ENV})
    assert r.status_code == 200, r.text
    refs = r.json()["rules"] + r.json()["subtechnique_rules"]
    page = html.unescape(_html(web_client, "/techniques/T1059.001", environment=ENV))
    assert page.count(">fires here<") == sum(1 for x in refs if x["fires"])
    assert page.count(">cannot fire: ") == sum(1 for x in refs if x["fires"] is False)
    for reason in {x["why_not"] for x in refs if x["why_not"]}:
        assert f"cannot fire: {reason}<" in page
    plain = _html(web_client, "/techniques/T1059.001")
    assert "fires here" not in plain and "cannot fire" not in plain


def test_gaps_page_takes_an_environment(web_client: TestClient) -> None:
    r = web_client.get(f"{API}/gaps", params={"environment": ENV, "limit": "50"})
    assert r.status_code == 200, r.text
    gaps = r.json()
    page = _html(web_client, "/gaps", environment=ENV)
    assert f"<strong>{gaps['total']}</strong>" in page and "not effective here" in page
    assert 'name="environment" value="Data-sources-sample"' in page
    for g in gaps["items"][:10]:
        assert f'data-technique="{g["id"]}"' in page
        assert g["state"].replace("_", " ") in page


def test_matrix_with_an_environment_is_its_page(web_client: TestClient) -> None:
    """/matrix?environment= is the environment page (its five-state matrix), filters kept."""
    r = web_client.get(
        "/matrix", params={"environment": ENV, "catalog": "sigma-attack18"}, follow_redirects=False
    )
    assert r.status_code == 307
    assert r.headers["location"] == f"/environments/{ENV}?catalog=sigma-attack18"
    assert web_client.get(r.headers["location"]).status_code == 200
