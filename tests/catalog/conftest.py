"""Fixtures for the catalog-format tests: where the shared real catalogs live, default limits."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from app.core.config import Limits

DEFAULT_CATALOG_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "catalogs"


@pytest.fixture(scope="session")
def catalog_dir() -> Path:
    """The shared real catalogs (KBMAP_TEST_CATALOG_DIR overrides); missing data fails the run."""
    path = Path(os.environ.get("KBMAP_TEST_CATALOG_DIR", DEFAULT_CATALOG_DIR))
    assert path.is_dir(), f"shared catalogs not found at {path}"
    return path


@pytest.fixture(scope="session")
def limits() -> Limits:
    return Limits()


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Writes {relative path: text} under a fresh folder and returns it (for open_source)."""
    count = 0

    def make(files: dict[str, str]) -> Path:
        nonlocal count
        count += 1
        root = tmp_path / f"tree{count}"
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return root

    return make
