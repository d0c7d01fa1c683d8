"""The history page (/history) and the chart route (/api/v1/coverage/history.svg) on a history
made through the API: sigma-attack18 imported as sa18, deleted, imported again
(tests/layer/history_steps.py). Counts come from /coverage/techniques, never from the history."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.layer.history_steps import API, NAME, Steps, history_steps

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def steps(loaded_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Steps]:
    yield from history_steps(loaded_sqlite_file, tmp_path_factory.mktemp("web-history"))


def page(steps: Steps, status: int = 200, **params: str) -> str:
    r = steps.client.get("/history", params=params)
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    return r.text


def test_nav_links_the_history_page(steps: Steps) -> None:
    assert 'href="/history"' in page(steps)  # every catalog's history: the domain's


def test_page_shows_the_three_points_and_the_chart(steps: Steps) -> None:
    text = page(steps, catalog=NAME)
    rows = re.findall(r'<tr data-snapshot="(\d+)" data-cause="(\w+)" data-covered="(\d+)">', text)
    n = len(steps.covered)
    want = list(zip(steps.snapshots, steps.causes, [n, 0, n], strict=True))[::-1]
    assert [(int(s), c, int(k)) for s, c, k in rows] == want  # newest first
    figure = text.split('<figure class="trend"', 1)[1].split("</figure>", 1)[0]
    svg = ET.fromstring(figure[figure.index("<svg") :])
    circles = [c for c in svg.iter(f"{SVG}circle")]
    assert len(circles) == 3
    assert ["loss" in c.get("class", "") for c in circles] == [False, True, False]
    assert f"covered {n}" in ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    assert "−" + str(n) in text and "+" + str(n) in text  # the moves in the table


def test_changes_default_to_the_last_change_and_link_techniques(steps: Steps) -> None:
    text = page(steps, catalog=NAME)
    _, deleted, _ = steps.snapshots
    assert f"Changes since snapshot {deleted}" in text
    changed = dict(re.findall(r'<tr data-technique="([^"]+)" data-change="(\w+)">', text))
    assert set(changed) == steps.covered and set(changed.values()) == {"gained"}
    tid = sorted(steps.covered)[0]
    assert f'href="/techniques/{tid}?domain=enterprise"' in text
    assert "rule added (sa18: " in html.unescape(text)
    n = len(steps.covered)
    assert 250 < n < 500  # the page shows 500: all the losses, then some of the gains
    first = page(steps, catalog=NAME, since=str(steps.snapshots[0]))
    assert f"<strong>{2 * n}</strong> changes: {n} gained, {n} lost;" in first
    shown = re.findall(r'data-change="(\w+)"', first)  # a page of 500, the losses first
    assert shown == ["lost"] * n + ["gained"] * (500 - n)
    assert f"The first 500 of {2 * n} changes" in first


def test_unknown_catalog_is_the_error_page_naming_known_ones(steps: Steps) -> None:
    text = html.unescape(page(steps, 404, catalog="nope"))
    assert 'id="error-message"' in text and "nope" in text and NAME in text
    assert "404" in page(steps, 404, catalog=NAME, since="999999")


def test_chart_route_serves_the_same_svg(steps: Steps) -> None:
    r = steps.client.get(f"{API}/coverage/history.svg", params={"catalog": NAME})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/svg+xml")
    svg = ET.fromstring(r.content)
    assert len(list(svg.iter(f"{SVG}circle"))) == 3
    bad = steps.client.get(f"{API}/coverage/history.svg", params={"catalog": "nope"})
    assert bad.status_code == 404 and NAME in bad.json()["error"]["message"]
