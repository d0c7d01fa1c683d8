"""docs/architecture.md stays true to the code: its layout names every module in app/, and only
modules that exist (the copy this replaced listed modules that did not exist and omitted web/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "architecture.md"
pytestmark = pytest.mark.unit


def _layout_block() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    found = re.search(r"```\n(app/\n.*?)```", text, re.S)
    assert found, "docs/architecture.md has no layout block starting with app/"
    return found.group(1)


def _listed_modules() -> set[str]:
    """Paths the layout block names, folder lines setting the prefix for the lines below them."""
    listed: set[str] = set()
    folder = ""
    for line in _layout_block().splitlines():
        if not line.startswith("  "):
            continue  # the block's own first line, app/
        name = line.strip().split(" ", 1)[0]
        if line.startswith("  ") and not line.startswith("    ") and name.endswith("/"):
            folder = name
        elif name.endswith(".py") or name.endswith("/"):
            listed.add(f"app/{folder if line.startswith('    ') else ''}{name}")
    return listed


def _modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "app").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if "/migrations/" in rel or path.name == "__init__.py" or "/kb/" in rel:
            continue
        found.add(rel)
    return found


def _covered(module: str, listed: set[str]) -> bool:
    return module in listed or any(module.startswith(p) for p in listed if p.endswith("/"))


def test_every_module_in_app_is_in_the_layout() -> None:
    listed = _listed_modules()
    missing = sorted(m for m in _modules() if not _covered(m, listed))
    assert not missing, f"docs/architecture.md does not list: {missing}"


def test_the_layout_lists_no_module_that_does_not_exist() -> None:
    absent = sorted(p for p in _listed_modules() if not (ROOT / p).exists())
    assert not absent, f"docs/architecture.md lists modules that do not exist: {absent}"
