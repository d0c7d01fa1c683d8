"""Token and audit commands as a user runs them: a real process, its exit code and its output."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import ROOT

pytestmark = pytest.mark.integration  # runs kbmap in a subprocess on a database it builds


def kbmap(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KBMAP_DATABASE_URL": db, "KBMAP_ENVIRONMENT": "test", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_token_create_prints_the_token_once_and_it_works(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.sqlite'}"
    made = kbmap("token", "create", "--scope", "write", "--name", "ci", db=db)
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kbm_")
    token = lines[0]
    assert "created token ci (scopes: write; expires: never)" in made.stderr
    assert token not in made.stderr

    listed = kbmap("token", "list", "--json", db=db)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["scopes"], r["status"]) for r in rows] == [("ci", ["write"], "active")]
    assert token.split("_", 2)[2] not in listed.stdout and token[:16] == rows[0]["prefix"]

    again = kbmap("token", "create", "--scope", "read", "--name", "ci", db=db)
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr.strip() == "kbmap: a token named 'ci' exists (revoked names stay taken)"

    settings = Settings(database_url=db, environment="test")
    with TestClient(create_app(settings)) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert client.delete("/api/v1/catalogs/none", headers=auth).status_code == 404
        assert kbmap("token", "revoke", "ci", db=db).returncode == 0
        assert client.delete("/api/v1/catalogs/none", headers=auth).status_code == 401

    audit = kbmap("audit", "--json", db=db)
    assert audit.returncode == 0, audit.stderr
    events = [
        (e["actor"], e["action"], e["target"], e["outcome"])
        for e in reversed(json.loads(audit.stdout)["items"])
    ]
    me = f"cli:{getpass.getuser()}"
    assert events == [
        (me, "token create", "ci", "ok"),
        (me, "token create", "ci", "error"),
        ("ci", "DELETE /catalogs/{name}", "/api/v1/catalogs/none", "error"),
        (me, "token revoke", "ci", "ok"),
        ("anonymous", "DELETE /catalogs/{name}", "/api/v1/catalogs/none", "denied"),
    ]
    assert token not in audit.stdout
    table = kbmap("audit", "--limit", "2", db=db)
    assert table.returncode == 0 and "5 events" in table.stdout and "token revoke" in table.stdout


def test_cli_writes_are_audited(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.sqlite'}"
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    assert kbmap("ingest", str(bad), db=db).returncode == 1
    catalog = tmp_path / "team.yaml"
    catalog.write_text("name: team\nrules: []\n")
    assert kbmap("catalog", "import", str(catalog), db=db).returncode == 1  # no release loaded
    audit = json.loads(kbmap("audit", "--json", db=db).stdout)["items"]
    assert [(e["action"], e["target"], e["outcome"]) for e in reversed(audit)] == [
        ("ingest", str(bad), "error"),
        ("catalog import", str(catalog), "error"),
    ]
    assert audit[-1]["detail"]["arguments"]["sources"] == [str(bad)]
    assert "not valid JSON" in audit[-1]["detail"]["error"]
