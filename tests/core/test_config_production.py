"""Production refuses settings that would weaken auth: a short token key, open reads off loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import MIN_TOKEN_KEY_BYTES, Settings

KEY = "k" * MIN_TOKEN_KEY_BYTES


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"token_key": "k" * (MIN_TOKEN_KEY_BYTES - 1)},
            "KBMAP_TOKEN_KEY must be at least 32 bytes",
        ),
        ({"token_key": KEY, "read_auth": "open", "host": "0.0.0.0"}, "KBMAP_READ_AUTH=open"),
        ({"token_key": KEY, "read_auth": "open", "host": "10.0.0.5"}, "loopback only"),
    ],
)
def test_production_refuses(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(environment="production", **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "values",
    [
        {"token_key": KEY},
        {"token_key": KEY, "read_auth": "open", "host": "127.0.0.1"},
        {"token_key": KEY, "read_auth": "required", "host": "0.0.0.0"},
    ],
)
def test_production_accepts(values: dict[str, str]) -> None:
    assert Settings(environment="production", **values).environment == "production"  # type: ignore[arg-type]


def test_short_key_outside_production_is_allowed() -> None:
    assert Settings(environment="development", token_key="short").token_key == "short"


@pytest.mark.integration
def test_serve_says_it_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KBMAP_")}
    env.update(
        KBMAP_ENVIRONMENT="production",
        KBMAP_TOKEN_KEY=KEY,
        KBMAP_READ_AUTH="open",
        KBMAP_DATABASE_URL=f"sqlite:///{tmp_path / 'kbmap.sqlite'}",
    )
    args = [sys.executable, "-m", "app.cli.main", "serve", "--host", "0.0.0.0", "--port", "9"]
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "KBMAP_READ_AUTH=open" in lines[0] and "0.0.0.0" in lines[0]
    assert not (tmp_path / "kbmap.sqlite").exists()
