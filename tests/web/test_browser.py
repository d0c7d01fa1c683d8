"""The pages in headless Chromium against a live server: computed cell colours, the click from
the matrix to the seed page, the gaps table; screenshots for the README land in docs/img/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.web.views import score_fill

pytestmark = pytest.mark.browser

IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
SEED_LINE = (
    "mitre_attck_lateral_movement: PT-CR-956: Disable_Smartcard: "
    "Smart Card is disabled in the registry"
)


def rgb(fill: str) -> str:
    r, g, b = (int(fill[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, 1)"


def full_page_png(driver: Any, path: Path, width: int) -> None:
    """Screenshot of the whole page at `width` CSS pixels (grows the window to the page)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(int(height) + 120, 4000))
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))


def test_matrix_colours_click_through_to_the_seed_page(browser: Any, live_server: str) -> None:
    from selenium.webdriver.common.by import By

    view = "version=18.1&catalog=sigma-attack18&catalog=maxpatrol-siem"
    api = httpx.get(
        f"{live_server}/api/v1/coverage/techniques?{view}&limit=1000", timeout=30
    ).json()
    scores = {r["id"]: r for r in api["items"]}
    uncovered = next(r["id"] for r in api["items"] if not r["covered"] and not r["is_subtechnique"])
    browser.set_window_size(1600, 1000)
    browser.get(f"{live_server}/matrix?{view}")
    for tid in ("T1059.001", uncovered):
        cell = browser.find_element(By.ID, "cell-" + tid.replace(".", "-"))
        score = scores[tid]["score"]
        assert float(cell.get_attribute("data-score")) == score
        assert cell.value_of_css_property("background-color") == rgb(score_fill(score))
    assert scores["T1059.001"]["score"] > 0 and scores[uncovered]["score"] == 0

    parent = browser.find_element(By.ID, "cell-T1550")
    parent.find_element(By.TAG_NAME, "summary").click()  # open its sub-techniques
    sub = browser.find_element(By.ID, "cell-T1550-001")
    assert sub.is_displayed()
    assert sub.value_of_css_property("background-color") == rgb(
        score_fill(scores["T1550.001"]["score"])
    )
    browser.find_element(By.CSS_SELECTOR, "#cell-T1059 summary").click()  # one near the top
    browser.set_window_size(1920, 1200)
    browser.execute_script("window.scrollTo(0, 0)")
    IMG.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(IMG / "matrix.png"))  # the top of the matrix, at full size
    browser.set_window_size(1600, 1000)

    sub.find_element(By.TAG_NAME, "a").click()
    assert (
        browser.current_url == f"{live_server}/techniques/T1550.001?version=18.1&domain=enterprise"
    )
    lines = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#rules .rule-line")]
    assert SEED_LINE in lines
    assert "DET0185" in browser.find_element(By.ID, "detection").text
    browser.set_window_size(1280, 1000)
    full_page_png(browser, IMG / "technique-T1550.001.png", 1280)


def test_gaps_table_matches_the_gaps_api(browser: Any, live_server: str) -> None:
    from selenium.webdriver.common.by import By

    api = httpx.get(f"{live_server}/api/v1/gaps?groups=G0016&limit=10", timeout=30).json()
    browser.set_window_size(1600, 1000)
    browser.get(f"{live_server}/gaps?groups=G0016")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.gaps tbody tr")[:10]
    assert [r.get_attribute("data-technique") for r in rows] == [g["id"] for g in api["items"]]
    assert [float(r.get_attribute("data-priority")) for r in rows] == [
        g["priority"] for g in api["items"]
    ]
    first = rows[0].find_elements(By.TAG_NAME, "td")
    assert first[1].text.startswith(api["items"][0]["id"])


def test_api_docs_render_offline_under_their_policy(browser: Any, live_server: str) -> None:
    """Swagger UI from the package, started by our script: no inline script, nothing fetched
    from anywhere but this server."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{live_server}/docs")
    ops = lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")  # noqa: E731
    WebDriverWait(browser, 60).until(lambda d: len(ops(d)) > 20)
    paths = {e.get_attribute("data-path") for e in ops(browser)}
    assert "/api/v1/techniques/{attack_id}" in paths
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources and all(r.startswith(live_server) or r.startswith("blob:") for r in resources)
