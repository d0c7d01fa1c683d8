"""The knowledge base walked as a reader walks it, in headless Chromium against a live server:
search "APT29" → its group page → a gap technique → a rule covering it → that rule's catalog →
the release diff. On every page every link answers 200 and stays inside kbmap (the only links
out are the secondary "on attack.mitre.org" ones and cited sources), nothing is loaded from
another host, and a screenshot of each page kind is refreshed in docs/img/."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.rawdata import by_ext_id

pytestmark = pytest.mark.browser

IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
# Links that may leave kbmap: the secondary link to the object's page on attack.mitre.org, cited
# sources and a rule's references (the URL is the source itself), links written in ATT&CK text
OUTBOUND = "a.site, a.external, #sources a, .references a"


@pytest.fixture(scope="module")
def checked() -> Iterator[dict[str, int]]:
    """Internal link → status, shared by the walk so a link is fetched once."""
    yield {}


def _links(browser: Any) -> list[tuple[str, bool]]:
    """Every anchor's absolute href, and whether it is one allowed to leave kbmap."""
    pairs: list[list[Any]] = browser.execute_script(
        "return Array.from(document.querySelectorAll('a[href]'))"
        f".map(a => [a.href, a.matches({OUTBOUND!r})])"
    )
    return [(str(href), bool(outbound)) for href, outbound in pairs]


def _assert_links(browser: Any, live_server: str, checked: dict[str, int]) -> None:
    """Every link on the page: inside kbmap and 200, or an allowed outbound link."""
    host = urlsplit(live_server).netloc
    here: set[str] = set()
    for href, outbound in _links(browser):
        parts = urlsplit(href)
        if parts.scheme in ("http", "https") and parts.netloc == host:
            here.add(href.split("#", 1)[0])
        else:
            assert outbound, f"{browser.current_url}: {href} leaves kbmap"
    todo = sorted(here - checked.keys())
    with ThreadPoolExecutor(4) as pool:
        for url, status in zip(todo, pool.map(_status, todo), strict=True):
            checked[url] = status
    bad = {u: checked[u] for u in sorted(here) if checked[u] != 200}
    assert not bad, f"{browser.current_url}: links that do not answer 200: {bad}"


def _status(url: str) -> int:
    return httpx.get(url, timeout=60).status_code


def _assets_local(browser: Any, live_server: str) -> None:
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert all(r.startswith(live_server) for r in resources), resources


def _shot(browser: Any, name: str, width: int = 1280) -> None:
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, min(int(height) + 120, 3000))
    IMG.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(IMG / f"kb-{name}.png"))
    browser.set_window_size(1600, 1000)


def _click(browser: Any, css: str) -> None:
    from selenium.webdriver.common.by import By

    element = browser.find_element(By.CSS_SELECTOR, css)
    browser.execute_script("arguments[0].scrollIntoView()", element)
    browser.get(element.get_attribute("href"))  # as a click, without overlap flakiness


def _visit(browser: Any, live_server: str, checked: dict[str, int], kind: str) -> None:
    """The page just opened: assets local, links good, screenshot refreshed."""
    assert "Error" not in browser.title, browser.current_url
    _assets_local(browser, live_server)
    _assert_links(browser, live_server, checked)
    _shot(browser, kind)


def test_walk_search_group_gap_rule_catalog_diff(
    browser: Any, live_server: str, checked: dict[str, int]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    apt29 = by_ext_id("enterprise-attack-18.1.json.gz", "intrusion-set", "G0016")
    assert "APT29" in apt29["aliases"]
    browser.set_window_size(1600, 1000)
    browser.get(f"{live_server}/")
    box = browser.find_element(By.CSS_SELECTOR, "header form[action='/search'] input[name='q']")
    box.send_keys("APT29", Keys.ENTER)
    WebDriverWait(browser, 30).until(  # the form's submit navigates after send_keys returns
        lambda d: (
            urlsplit(d.current_url).path == "/search"
            and d.execute_script("return document.readyState") == "complete"
            and d.find_elements(By.CSS_SELECTOR, ".search-kind .search-hit")
        )
    )
    first = browser.find_element(By.CSS_SELECTOR, ".search-kind .search-hit")
    assert first.get_attribute("data-id") == "G0016"
    _visit(browser, live_server, checked, "search")

    _click(browser, ".search-hit[data-id='G0016'] a")
    assert urlsplit(browser.current_url).path == "/groups/G0016"
    assert apt29["name"] in browser.find_element(By.TAG_NAME, "h1").text
    _visit(browser, live_server, checked, "group")

    gap_links = [
        a.get_attribute("href")
        for a in browser.find_elements(By.CSS_SELECTOR, "#gaps ol.gaps a.attack-id")
    ]
    assert gap_links, "the group page lists no gap"
    rule_css = "#rules a[href*='/rules/']"
    for href in gap_links:  # the first gap that some rule covers weakly
        browser.get(href)
        if browser.find_elements(By.CSS_SELECTOR, rule_css):
            break
    else:
        pytest.fail(f"no gap of G0016 has a rule: {gap_links}")
    assert urlsplit(browser.current_url).path.startswith("/techniques/")
    _visit(browser, live_server, checked, "gap-technique")

    _click(browser, rule_css)
    path = urlsplit(browser.current_url).path
    catalog = path.split("/")[2]
    assert path.startswith(f"/catalogs/{catalog}/rules/")
    _visit(browser, live_server, checked, "rule")

    _click(browser, f"a[href^='/catalogs/{catalog}']:not([href*='/rules/'])")
    assert urlsplit(browser.current_url).path == f"/catalogs/{catalog}"
    _visit(browser, live_server, checked, "catalog")

    _click(browser, "a[href^='/diff']")
    assert urlsplit(browser.current_url).path == "/diff"
    _visit(browser, live_server, checked, "diff")


KINDS = {
    "software": "/software/S0154?version=18.1",
    "campaign": "/campaigns/C0024?version=18.1",
    "mitigation": "/mitigations/M1026?version=18.1",
    "data-component": "/data-components/DC0002?version=18.1",
    "detection-strategy": "/detection-strategies/DET0185?version=18.1",
    "analytic": "/analytics/AN0526?version=18.1",
    "data-source": "/data-sources/DS0009?version=17.1",
    "compare": "/compare?catalog=sigma-attack18&catalog=maxpatrol-siem&version=18.1",
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_other_page_kind_links_inside_kbmap(
    browser: Any, live_server: str, checked: dict[str, int], kind: str
) -> None:
    browser.set_window_size(1600, 1000)
    browser.get(urljoin(live_server, KINDS[kind]))
    _visit(browser, live_server, checked, kind)


def test_print_media_hides_navigation_and_keeps_the_legend(browser: Any, live_server: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live_server}/techniques/T1550.001?version=18.1")
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert not browser.find_element(By.CSS_SELECTOR, "header.top").is_displayed()
        assert browser.find_element(By.TAG_NAME, "h1").is_displayed()
        browser.get(f"{live_server}/matrix?version=18.1")
        legend = browser.find_elements(By.CSS_SELECTOR, ".legend")
        assert legend and all(e.is_displayed() for e in legend)
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
