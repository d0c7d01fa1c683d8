"""Browser fixtures: a real uvicorn server on 127.0.0.1 and Debian's headless Chromium.

Chromium and its driver come from Debian (`apt-get install chromium chromium-driver`); Selenium
drives them through /usr/bin/chromedriver, so nothing is downloaded at test time. Without them the
browser tests skip locally and fail under CI=true, where a skip would hide a missing install.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from app.core.config import Settings
from app.main import create_app

CHROMIUM = Path(os.environ.get("KBMAP_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("KBMAP_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(
    catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """kbmap served by uvicorn in a thread, on a copy of the database with every catalog."""
    db = tmp_path_factory.mktemp("live") / "kbmap.sqlite"
    shutil.copy(catalog_sqlite_file, db)
    settings = Settings(database_url=f"sqlite:///{db}", environment="test")
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
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium through Selenium, with a throwaway profile."""
    problem = _missing()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need Chromium under CI: {problem}")
        pytest.skip(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kbmap-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1600,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
