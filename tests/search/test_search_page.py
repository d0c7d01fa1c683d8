"""The /search page and the header box: results grouped by kind, each linking inside kbmap with
the chosen release kept, the empty result, the box alone, HTML errors; the MCP-free parts of the
issue's walk start here (search "APT29" → the group page)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from tests import rawdata
from tests.search.conftest import E18, maxpatrol_rule
from tests.web.dom import Node, parse


def page(client: TestClient, url: str, status: int = 200) -> Node:
    r = client.get(url)
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    return parse(r.text)


def hits(doc: Node, kind: str) -> list[Node]:
    return doc.by_id(f"kind-{kind}").select("li", "search-hit")


def primary_link(hit: Node) -> str:
    return hit.select("a")[0].attrs["href"]


def test_apt29_lists_the_group_first_and_links_to_its_page(client: TestClient) -> None:
    doc = page(client, "/search?q=APT29")
    first = hits(doc, "group")[0]
    assert first.attrs["data-id"] == "G0016"
    assert rawdata.by_ext_id(E18, "intrusion-set", "G0016")["name"] in first.text
    assert primary_link(first) == "/groups/G0016"
    assert first.select("a", "site")[0].attrs["href"] == "https://attack.mitre.org/groups/G0016/"


def test_the_chosen_release_is_kept_in_every_link(client: TestClient) -> None:
    doc = page(client, "/search?q=access+token&version=18.1&domain=enterprise")
    tech = [h for h in hits(doc, "technique") if h.attrs["data-id"] == "T1550.001"]
    assert primary_link(tech[0]) == "/techniques/T1550.001?version=18.1&domain=enterprise"
    hidden = {
        n.attrs["name"]: n.attrs["value"]
        for n in doc.select("form", "search-page")[0].select("input")
        if n.attrs.get("type") == "hidden"
    }
    assert hidden == {"domain": "enterprise", "version": "18.1"}
    switch = doc.select("nav", "releases")[0]
    older = [a.attrs["href"] for a in switch.select("a") if "17.1" in a.text]
    assert older and "q=access+token" in older[0] and "version=17.1" in older[0]


def test_a_rule_links_to_its_page_and_its_catalog(client: TestClient) -> None:
    doc = page(client, "/search?q=PT-CR-956")
    first = hits(doc, "rule")[0]
    assert (
        first.attrs["data-id"] == "PT-CR-956" and maxpatrol_rule("PT-CR-956")["title"] in first.text
    )
    links = [a.attrs["href"] for a in first.select("a")]
    assert links == ["/catalogs/maxpatrol-siem/rules/PT-CR-956", "/catalogs/maxpatrol-siem"]


def test_groups_come_best_first_with_their_totals_and_a_more_link(client: TestClient) -> None:
    apt29 = page(client, "/search?q=APT29")
    kinds = [s.attrs["data-kind"] for s in apt29.select("section", "search-kind")]
    assert kinds[0] == "group" and kinds.index("rule") < kinds.index("technique")
    doc = page(client, "/search?q=powershell")
    rules = doc.by_id("kind-rule")
    total = int(rules.select("small")[0].text)
    assert len(hits(doc, "rule")) == 10 < total
    more = rules.select("p", "more")[0].select("a")[0].attrs["href"]
    assert "kind=rule" in more and "limit=100" in more
    assert len(hits(page(client, more), "rule")) == min(100, total)


def test_every_link_stays_inside_kbmap_but_the_secondary_site_links(client: TestClient) -> None:
    for url in ("/search?q=APT29", "/search?q=access+token", "/search?q=execution"):
        doc = page(client, url)
        for a in doc.select("a"):
            href = a.attrs["href"]
            if "site" in a.classes:
                assert href.startswith("https://attack.mitre.org/")
            else:
                assert not urlsplit(href).netloc and href.startswith(("/", "#")), href


def test_a_tactic_links_to_the_matrix(client: TestClient) -> None:
    doc = page(client, "/search?q=TA0002&version=18.1")
    first = hits(doc, "tactic")[0]
    assert first.attrs["data-id"] == "TA0002" and primary_link(first) == "/matrix?version=18.1"


def test_no_match_says_so_and_suggests(client: TestClient) -> None:
    doc = page(client, "/search?q=zzqq+xxnotaword&kind=rule")
    empty = doc.by_id("no-results")
    assert "Nothing matches" in empty.text and "zzqq xxnotaword" in empty.text
    suggested = [a.attrs["href"] for a in empty.select("a")]
    assert any("kind=" not in h for h in suggested)  # all kinds
    assert any("q=xxnotaword" in h for h in suggested)  # fewer words


def test_without_a_query_the_box_and_examples_show(client: TestClient) -> None:
    doc = page(client, "/search")
    assert doc.select("form", "search-page") and doc.select("p", "search-help")
    assert not doc.select("section", "search-kind")


@pytest.mark.parametrize(
    "url",
    [
        "/search?q=x&kind=spaceship",
        "/search?q=%00",
        "/search?q=" + "x" * 201,
        "/search?q=x&version=9.9",
    ],
)
def test_errors_are_html_pages(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("text/html")
    message = parse(r.text).by_id("error-message").text
    if "spaceship" in url:
        assert "known: technique" in message


@pytest.mark.parametrize(
    "url", ["/", "/matrix", "/gaps", "/search?q=APT29", "/techniques/T1550.001"]
)
def test_every_page_has_the_search_box(client: TestClient, url: str) -> None:
    doc = page(client, url)
    (box,) = doc.select("form", "search")
    assert box.attrs["action"] == "/search" and box.attrs["method"] == "get"
    assert [i.attrs["name"] for i in box.select("input")] == ["q"]


def test_the_walk_from_search_to_the_group_page(client: TestClient) -> None:
    """Search "APT29" → the group page (Part B's) answers 200 inside kbmap."""
    doc = page(client, "/search?q=APT29")
    href = primary_link(hits(doc, "group")[0])
    r = client.get(href)
    assert r.status_code == 200, (href, r.status_code)
