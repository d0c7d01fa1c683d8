"""`kbmap check` as a CI job runs it: a real process on a copy of the catalog database with the
DeTT&CT endpoints sample imported. Expected counts come from the coverage service on the same
scope (the gate's input) and from the raw sigma-attack18 archive; the exit code and the lines
printed are the command's own."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from app.cli.check import github_command, junit
from app.core.config import Settings
from app.core.db import make_engine, read_session
from app.coverage.gate import Outcome
from tests.cli.test_attack import kbmap
from tests.cli.test_environment import SAMPLE, sample_name
from tests.conftest import ROOT, catalog_file

CATALOG = "sigma-attack18"
ISSUE_COVERED = 398  # issue #16: sigma-attack18 on enterprise 18.1
SCHEMA = json.loads((ROOT / "kb" / "schemas" / "coverage-baseline.schema.json").read_text())
TAG = re.compile(r"attack\.(t\d{4}(?:\.\d{3})?)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def db(catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A copy of the catalog database with the DeTT&CT endpoints sample imported, once."""
    path = tmp_path_factory.mktemp("check") / "kbmap.sqlite"
    shutil.copy(catalog_sqlite_file, path)
    url = f"sqlite:///{path}"
    kbmap("env", "import", str(SAMPLE), db=url, check=True)
    return url


def copy_of(db: str, tmp_path: Path) -> str:
    path = tmp_path / "copy.sqlite"
    shutil.copy(db.removeprefix("sqlite:///"), path)
    return f"sqlite:///{path}"


def rows(db: str, env: str | None = None) -> list[Any]:
    """The coverage service's rows for `--catalog CATALOG` on enterprise 18.1 (and --env)."""
    from app.attack import service as attack_service
    from app.coverage import service as coverage_service

    s = Settings(database_url=db, environment="test")
    engine = make_engine(db)
    try:
        with read_session(engine) as session:
            release = attack_service.get_release(session, domain="enterprise", version="18.1")
            scope = coverage_service.make_scope(
                session, release=release, catalogs=[CATALOG], environment=env, kb_dir=s.kb_dir
            )
            return coverage_service.technique_rows(session, scope=scope, weights=s.coverage)
    finally:
        engine.dispose()


def covered(db: str) -> set[str]:
    return {r.id for r in rows(db) if r.covered}


def check(*args: str, db: str) -> Any:
    return kbmap(
        "check", "-c", CATALOG, "--domain", "enterprise", "--version", "18.1", *args, db=db
    )


def test_min_covered_fails_with_one_line_one_above_and_passes_at(db: str) -> None:
    n = len(covered(db))
    summary = json.loads(kbmap("coverage", "-c", CATALOG, "--json", db=db, check=True).stdout)
    assert n == summary["all"]["covered"] == ISSUE_COVERED
    bad = check("--min-covered", str(n + 1), db=db)
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.splitlines() == [f"kbmap check: FAILED min-covered: {n} covered < {n + 1}"]
    assert bad.stderr == ""
    ok = check("--min-covered", str(n), db=db)
    assert ok.returncode == 0, ok.stderr
    (line,) = ok.stdout.splitlines()
    assert line.startswith("kbmap check: OK, 1 condition passed") and f"{n} covered" in line


def only_technique_rules() -> tuple[str, set[str]]:
    """From the raw archive: a technique whose every rule tags it alone (so removing those rules
    loses exactly it), and the member names of those rules. The first such id, sorted."""
    files: dict[str, set[str]] = {}
    with tarfile.open(catalog_file("sigma-attack18-rules.tar.gz")) as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.endswith((".yml", ".yaml")):
                text = tar.extractfile(m).read().decode(errors="replace")  # type: ignore[union-attr]
                files[m.name] = {t.upper() for t in TAG.findall(text)}
    by_tech: dict[str, set[str]] = {}
    for name, tags in files.items():
        for t in tags:
            by_tech.setdefault(t, set()).add(name)
    alone = sorted(t for t, names in by_tech.items() if all(files[n] == {t} for n in names))
    return alone[0], by_tech[alone[0]]


def without(members: set[str], target: Path) -> None:
    """The shared archive minus `members`, as a new .tar.gz."""
    src_path = catalog_file("sigma-attack18-rules.tar.gz")
    with tarfile.open(src_path) as src, tarfile.open(target, "w:gz") as out:
        for m in src.getmembers():
            if m.name in members:
                continue
            fh = src.extractfile(m) if m.isfile() else None
            out.addfile(m, io.BytesIO(fh.read()) if fh is not None else None)


def test_no_loss_names_exactly_the_techniques_a_rule_removal_loses(db: str, tmp_path: Path) -> None:
    url = copy_of(db, tmp_path)
    before = covered(url)
    saved = tmp_path / "coverage-baseline.json"
    out = check("--save", str(saved), db=url)
    assert out.returncode == 0 and f"baseline written to {saved}" in out.stdout
    doc = json.loads(saved.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert set(doc["covered"]) == before and doc["catalogs"] == [CATALOG]
    assert check("--no-loss", "--baseline", str(saved), db=url).returncode == 0
    technique, members = only_technique_rules()
    assert technique in before
    smaller = tmp_path / "sigma-attack18-minus.tar.gz"
    without(members, smaller)
    reimport = ("catalog", "import", str(smaller), "--name", CATALOG, "--version", "18.1")
    kbmap(*reimport, db=url, check=True)
    assert before - covered(url) == {technique}  # the service agrees with the raw archive
    bad = check("--no-loss", "--baseline", str(saved), db=url)
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.splitlines() == [
        f"kbmap check: FAILED no-loss: 1 technique no longer covered: {technique}"
    ]
    again = tmp_path / "after.json"
    assert check("--save", str(again), db=url).returncode == 0
    ok = check("--no-loss", "--baseline", str(again), db=url)
    assert ok.returncode == 0 and ok.stdout.startswith("kbmap check: OK"), ok.stderr


def test_no_loss_without_a_baseline_judges_the_last_recorded_change(
    db: str, tmp_path: Path
) -> None:
    """The pull request's import is the last change: --no-loss fails naming what it lost, and
    passes once the next change loses nothing (the database predates the history: its first
    change starts it from the coverage found)."""
    url = copy_of(db, tmp_path)
    before = covered(url)
    technique, members = only_technique_rules()
    smaller = tmp_path / "sigma-attack18-minus.tar.gz"
    without(members, smaller)
    reimport = ("catalog", "import", str(smaller), "--name", CATALOG, "--version", "18.1")
    kbmap(*reimport, db=url, check=True)
    assert before - covered(url) == {technique}
    bad = check("--no-loss", db=url)
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.splitlines() == [
        f"kbmap check: FAILED no-loss: 1 technique no longer covered: {technique}"
    ]
    assert f"catalog:{CATALOG} before snapshot" in bad.stderr and "catalog_replace" in bad.stderr
    kbmap(*reimport, db=url, check=True)  # the same rules again: nothing lost this time
    ok = check("--no-loss", db=url)
    assert ok.returncode == 0 and ok.stdout.startswith("kbmap check: OK"), ok.stderr


def test_require_unknown_id_is_an_error_naming_it_and_uncovered_fails(db: str) -> None:
    out = check("--require", "T9999,T1059", "--require", "t0000.999", db=db)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        "kbmap check: --require: not active techniques of ATT&CK enterprise 18.1: T0000.999, T9999"
    ]
    all_rows = rows(db)
    uncovered = sorted(r.id for r in all_rows if not r.covered)[:2]
    some = sorted(r.id for r in all_rows if r.covered)[0]
    bad = check("--require", ",".join([some, *uncovered]), db=db)
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == [
        f"kbmap check: FAILED require: not covered: {', '.join(uncovered)}"
    ]
    assert check("--require", some.lower(), db=db).returncode == 0


def test_min_effective_in_the_dettect_environment(db: str) -> None:
    env = sample_name()
    n = sum(1 for r in rows(db, env) if r.state == "effective")
    assert 0 < n < len(covered(db))
    ok = check("--env", env, "--min-effective", str(n), "--min-covered", "1", db=db)
    assert ok.returncode == 0, ok.stderr
    assert f"{n} effective in environment {env}" in ok.stdout
    bad = check("--env", env, "--min-effective", str(n + 1), db=db)
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == [
        f"kbmap check: FAILED min-effective: {n} effective in environment {env} < {n + 1}"
    ]
    usage = check("--min-effective", "1", db=db)
    assert usage.returncode == 2 and "--min-effective needs --env" in usage.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no condition"),
        (("--no-loss", "-c", CATALOG), "give at most one --catalog"),
        (("--baseline", "x.json", "--min-covered", "1"), "--baseline is read by --no-loss"),
        (("--min-covered", "1", "--format", "xml"), "known: text, github, junit"),
        (("--no-loss", "--baseline", "/nonexistent/b.json"), "no such baseline file"),
        (("-c", "nope", "--min-covered", "1"), "no catalog named 'nope'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(db: str, args: tuple[str, ...], message: str) -> None:
    out = check(*args, db=db)
    assert out.returncode == 2 and out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert line.startswith("kbmap check: ") and message in line


def test_a_hostile_baseline_is_refused_with_its_location(db: str, tmp_path: Path) -> None:
    bad = tmp_path / "b.json"
    bad.write_text('{"format": "kbmap-coverage-baseline", "x": ' + "[" * 80 + "]" * 80 + "}")
    out = check("--no-loss", "--baseline", str(bad), db=db)
    assert out.returncode == 2 and "nested deeper than 64" in out.stderr and str(bad) in out.stderr


def test_github_and_junit_formats(db: str, tmp_path: Path) -> None:
    n = len(covered(db))
    gh = check("--min-covered", str(n + 1), "--require", "T1003", "--format", "github", db=db)
    assert gh.returncode == 1
    assert gh.stdout.splitlines() == [
        f"::error title=kbmap check::min-covered: {n} covered < {n + 1}"
    ]
    ju = check("--min-covered", str(n + 1), "--require", "T1003", "--format", "junit", db=db)
    assert ju.returncode == 1
    suite = ET.fromstring(ju.stdout).find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("2", "1")
    cases = {c.get("name"): c.find("failure") for c in suite.iter("testcase")}
    assert set(cases) == {"min-covered", "require"} and cases["require"] is None
    fail = cases["min-covered"]
    assert fail is not None and fail.get("message") == f"min-covered: {n} covered < {n + 1}"
    # a baseline from elsewhere: a warning, escaped in each format (% and < reach the output)
    saved = tmp_path / "b.json"
    check("--save", str(saved), db=db)
    doc = json.loads(saved.read_text())
    saved.write_text(json.dumps({**doc, "environment": "50% <b>"}))
    args = ("--no-loss", "--baseline", str(saved))
    warn = "the baseline was made on environment '50% <b>', this run is on 'none'"
    gw = check(*args, "--format", "github", db=db)
    assert gw.returncode == 0
    assert gw.stdout.splitlines()[0] == f"::warning title=kbmap check::{warn.replace('%', '%25')}"
    jw = check(*args, "--format", "junit", db=db)
    assert ET.fromstring(jw.stdout).findtext("testsuite/system-err") == warn


def test_renderings_escape_percent_newlines_and_markup() -> None:
    message = "100% <b>&\nnext\rline"
    assert github_command("error", message) == (
        "::error title=kbmap check::100%25 <b>&%0Anext%0Dline"
    )
    doc = junit([Outcome("require", False, message), Outcome("no-loss", True, "ok")], [message])
    root = ET.fromstring(doc)
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and failure.get("message") == message
    as_text = message.replace("\r", "\n")  # XML reads a CR in element text as a line end
    assert failure.text == as_text and root.findtext("testsuite/system-err") == as_text
    assert "<b>" not in doc
