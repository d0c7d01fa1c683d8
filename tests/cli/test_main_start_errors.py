"""Start-up failures as a user meets them in a real process: no database, a database that does not
answer or is malformed, a full disk, a bad setting. Each is one `kbmap:` line and exit 1, and a
read never leaves a database behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, attack_file

pytestmark = pytest.mark.integration  # runs kbmap in a subprocess

HOW = "make one with `kbmap ingest <bundle>` or `kbmap serve`"
READS = [
    ["releases"],
    ["technique", "T1550.001"],
    ["coverage"],
    ["gaps"],
    ["catalog", "list"],
    ["catalog", "show", "sigma"],
    ["catalog", "export", "sigma"],
    ["layer", "coverage"],
    ["diff", "17.1", "18.1"],
    ["token", "list"],
    ["audit"],
    ["catalog", "delete", "sigma"],  # changes only what exists: nothing to make
    ["token", "revoke", "t"],
]
UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/x"
# Run kbmap with every SQLite connection capped a few pages above its size: SQLite's own
# "database or disk is full", as a full disk gives it.
CAPPED = """
import sys
from sqlalchemy import Engine, event

def cap(dbapi_connection, _record):
    pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
    dbapi_connection.execute(f"PRAGMA max_page_count={pages + 8}")

event.listen(Engine, "connect", cap)
from app.cli.main import main
main()
"""


def run(
    args: list[str], cwd: Path, db: str | None = None, *, code: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """kbmap in `cwd` with no KBMAP_ variable but those given (the default database is
    ./data/kbmap.sqlite there)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KBMAP_")}
    clean.update(env, PYTHONPATH=str(ROOT))
    if db is not None:
        clean["KBMAP_DATABASE_URL"] = db
    head = ["-c", code] if code else ["-m", "app.cli.main"]
    return subprocess.run(
        [sys.executable, *head, *args],
        env=clean,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kbmap: "), proc.stderr
    return lines[0]


def test_reads_in_an_empty_folder_say_there_is_no_database_and_leave_nothing(
    tmp_path: Path,
) -> None:
    for args in READS:
        line = one_line(run(args, tmp_path))
        assert line == f"kbmap: no kbmap database at data/kbmap.sqlite; {HOW}", args
        assert list(tmp_path.iterdir()) == [], args


def test_writes_still_create_the_database(tmp_path: Path) -> None:
    made = run(["token", "create", "--name", "t"], tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "data" / "kbmap.sqlite").is_file()
    (tmp_path / "other").mkdir()
    ingest = run(["ingest", attack_file("ics-attack-18.1.json.gz")], tmp_path / "other")
    assert ingest.returncode == 0, ingest.stderr
    listed = run(["releases", "--json"], tmp_path / "other")
    assert listed.returncode == 0 and '"version": "18.1"' in listed.stdout


@pytest.mark.parametrize("args", [["releases"], ["token", "create", "--name", "t"]])
def test_a_database_that_does_not_answer_or_is_malformed_is_one_line(
    args: list[str], tmp_path: Path
) -> None:
    down = one_line(run(args, tmp_path, UNREACHABLE))
    assert down.startswith(
        f"kbmap: KBMAP_DATABASE_URL: cannot open the database {UNREACHABLE}: connection failed"
    )
    secret = one_line(run(args, tmp_path, UNREACHABLE.replace("nobody@", "u:s3cret@")))
    assert "s3cret" not in secret and "u:***@" in secret
    bad = one_line(run(args, tmp_path, "notaurl"))
    assert bad == (
        "kbmap: KBMAP_DATABASE_URL: not a database URL (e.g. sqlite:///./data/kbmap.sqlite or "
        "postgresql+psycopg://user@host/db): Could not parse SQLAlchemy URL from given URL string"
    )
    nowhere = tmp_path / "nonexistent" / "dir" / "x.sqlite"
    missing = one_line(run(args, tmp_path, f"sqlite:///{nowhere}"))
    if args == ["releases"]:
        assert missing == f"kbmap: no kbmap database at {nowhere}; {HOW}"
    else:
        assert missing == (
            f"kbmap: KBMAP_DATABASE_URL: cannot create the database {nowhere}: "
            f"folder {nowhere.parent.parent} does not exist"
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"KBMAP_ENVIRONMENT": "production"},
            "kbmap: bad setting: KBMAP_TOKEN_KEY must be set in production",
        ),
        (
            {"KBMAP_PORT": "eighty"},
            "kbmap: bad setting KBMAP_PORT: Input should be a valid integer, "
            "unable to parse string as an integer",
        ),
        (
            {"KBMAP_COVERAGE_STATUS": "{stable: 1"},
            "kbmap: bad setting KBMAP_COVERAGE_STATUS: not valid JSON",
        ),
        (
            {"KBMAP_DOWNLOAD_DEADLINE": "0"},
            "kbmap: bad setting KBMAP_DOWNLOAD_DEADLINE: Input should be greater than 0",
        ),
    ],
)
def test_a_bad_setting_is_one_line(env: dict[str, str], line: str, tmp_path: Path) -> None:
    assert one_line(run(["releases"], tmp_path, **env)) == line
    assert list(tmp_path.iterdir()) == []


def test_the_app_factory_refuses_bad_settings_in_one_line(tmp_path: Path) -> None:
    """`uvicorn app.main:create_app --factory` (the README's load command) stops at once."""
    for env, line in [
        ({"KBMAP_PORT": "eighty"}, "kbmap: bad setting KBMAP_PORT: Input should be a valid "),
        ({"KBMAP_DATABASE_URL": "notaurl"}, "kbmap: KBMAP_DATABASE_URL: not a database URL"),
    ]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("KBMAP_")}
        proc = subprocess.run(
            [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", "1"],
            env={**clean, **env, "PYTHONPATH": str(ROOT)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1
        assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith(line), proc.stderr


def test_a_full_disk_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.sqlite'}"
    assert run(["token", "create", "--name", "t"], tmp_path, db).returncode == 0
    full = run(["ingest", attack_file("ics-attack-18.1.json.gz")], tmp_path, db, code=CAPPED)
    assert one_line(full) == (
        "kbmap: no space left on the disk (database or disk is full); nothing was written"
    )
    listed = run(["releases", "--json"], tmp_path, db)
    assert (listed.returncode, listed.stdout.strip()) == (0, "[]")
