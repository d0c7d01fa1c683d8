"""What a user meets first: --version, --help on every command, tables in an 80-column terminal."""

from __future__ import annotations

import gzip
import html
import json
import re
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests import rawdata
from tests.cli.test_attack import kbmap
from tests.conftest import ROOT, catalog_file

# Typer's Python-type labels: <bool>, <str>, <int>, <float>, <list[str]>, <int range>, {name}...
PYTHON_TYPE = re.compile(r"<(?:bool|str|int|float|path|list\[|\w+ range)[^>]*>|\{\w+\}")


@pytest.mark.integration
def test_version_prints_the_package_version(tmp_path: Path) -> None:
    out = kbmap("--version", db=f"sqlite:///{tmp_path / 'v.sqlite'}")
    assert (out.returncode, out.stdout, out.stderr) == (0, f"kbmap {version('kbmap')}\n", "")
    assert not (tmp_path / "v.sqlite").exists()


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    subs = getattr(command, "commands", {})
    found = [path]
    for name, sub in subs.items():
        found += _command_paths(sub, (*path, name))
    return found


def test_every_help_reads_without_python_types(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import command_for

    monkeypatch.setenv("COLUMNS", "80")
    paths = _command_paths(command_for([]))
    assert len(paths) > 25 and ("catalog", "import") in paths and ("layer", "gaps") in paths
    for path in paths:
        command = command_for(list(path[:1]))
        assert command.main([*path, "--help"], "kbmap", standalone_mode=False) == 0
        text = capsys.readouterr().out
        assert "Usage: kbmap" in text, path
        assert PYTHON_TYPE.findall(text) == [], (path, text)
    # the value types that remain are words a shell user knows
    command_for(["gaps"]).main(["gaps", "--help"], "kbmap", standalone_mode=False)
    gaps_help = capsys.readouterr().out
    assert re.search(r"--limit\s+INTEGER\s+\[1<=x<=1000\]", gaps_help)
    flags = [line.strip("│ ") for line in gaps_help.splitlines() if "--json" in line]
    assert flags == ["--json"]  # a flag takes no value, so none is shown


@pytest.mark.integration
def test_help_through_the_installed_command(tmp_path: Path) -> None:
    out = kbmap("ingest", "--help", db=f"sqlite:///{tmp_path / 'h.sqlite'}", check=True)
    assert "ingest [OPTIONS] SOURCES..." in out.stdout
    assert PYTHON_TYPE.findall(out.stdout) == []


# ---- tables, gaps and the technique page on real data -----------------------------------------

SEED = ROOT.parent / "shared" / "seed" / "maxpatrol-T1550.001.txt"
E17, E18 = "enterprise-attack-17.1.json.gz", "enterprise-attack-18.1.json.gz"


@pytest.fixture(scope="module")
def cli_db(loaded_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The loaded releases plus the shipped MaxPatrol catalog and sigma-attack18, imported and
    a token made through the CLI (so the audit log has rows)."""
    path = tmp_path_factory.mktemp("surface") / "kbmap.sqlite"
    shutil.copy(loaded_sqlite_file, path)
    db = f"sqlite:///{path}"
    kbmap("catalog", "import", "maxpatrol-siem", db=db, check=True)
    rules = catalog_file("sigma-attack18-rules.tar.gz")
    kbmap("catalog", "import", rules, "--name", "sigma-attack18", db=db, check=True)
    kbmap("token", "create", "--name", "grafana-dashboard-reader", db=db, check=True)
    return db


def at_80(*args: str, db: str) -> str:
    out = kbmap(*args, db=db, check=True, columns=80).stdout
    assert "…" not in out, out
    assert max(len(line) for line in out.splitlines()) <= 80
    return re.sub(r"^[│┃] ", "", out.replace(" │ ", "   ").replace(" ┃ ", "   "), flags=re.M)


def test_tables_keep_names_whole_at_80_columns(cli_db: str) -> None:
    releases = at_80("releases", db=cli_db)
    for release in ("17.1", "18.1"):
        assert re.search(rf"^enterprise\s+{release}\s", releases, re.M)
    catalogs = at_80("catalog", "list", db=cli_db)
    for name in ("maxpatrol-siem", "sigma-attack18"):
        assert re.search(rf"^{name}\s", catalogs, re.M), catalogs
    tactics = [o["name"] for o in rawdata.objects(E18) if o["type"] == "x-mitre-tactic"]
    assert "Command and Control" in tactics and len(tactics) == 14
    coverage = at_80("coverage", db=cli_db)
    for tactic in tactics:
        assert re.search(rf"^{tactic}\s+\d+\s+\d+\s", coverage, re.M), (tactic, coverage)
    tokens = at_80("token", "list", db=cli_db)
    # too wide for one line per token: one block per token, `header: value` lines
    assert re.search(r"^name: grafana-dashboard-reader\nprefix: kbm_", tokens, re.M), tokens
    audit = at_80("audit", db=cli_db)
    assert re.search(r"cli:\S+\s+token create\s+grafana-dashboard-reader\s+ok", audit), audit


def _uncovered_by_sigma_attack18() -> set[str]:
    """Active 18.1 techniques no scoring sigma-attack18 rule names (raw files only: the
    catalog's normalized view, revoked ids followed to their replacement; deprecated and
    unsupported rules score 0)."""
    active = rawdata.active_techniques(E18)
    objs = rawdata.by_stix_id(E18)
    revoked = {
        rawdata.ext_id(objs[r["source_ref"]]): rawdata.ext_id(objs[r["target_ref"]])
        for r in rawdata.relationships(E18, "revoked-by")
        if objs[r["source_ref"]]["type"] == "attack-pattern"
    }
    with gzip.open(catalog_file("sigma-attack18.normalized.json.gz"), "rt") as fh:
        records = json.load(fh)
    covered = set()
    for rec in records:
        if rec["status"] in ("deprecated", "unsupported"):
            continue
        for written in rec["techniques"]:
            tid = written.upper()
            covered.add(revoked.get(tid, tid))
    return active - covered


def test_gaps_say_how_many_are_shown_and_put_collected_components_first(cli_db: str) -> None:
    uncovered = _uncovered_by_sigma_attack18()
    out = at_80("gaps", "-c", "sigma-attack18", "--collected", "Process Creation", db=cli_db)
    lines = out.splitlines()
    assert lines[0] == f"{len(uncovered)} gaps in ATT&CK enterprise 18.1"
    assert lines[1] == "collected (--collected): Process Creation"
    assert lines[-1] == f"showing 25 of {len(uncovered)} (--limit)"
    names = {
        rawdata.ext_id(o): o["name"]
        for o in rawdata.objects(E18)
        if o["type"] == "attack-pattern" and rawdata.active(o)
    }
    shown = re.findall(r"^\S+\s+(T\d{4}(?:\.\d{3})?) (.+?)\s*$", out, re.M)
    assert len(shown) == 25 and {tid for tid, _ in shown} <= uncovered
    assert all(name == names[tid] for tid, name in shown), shown
    components = re.findall(r"data components: (.+?)(?=\n\S|\n\s+\n|\Z)", out, re.S)
    with_collected = [c for c in components if "Process Creation" in c]
    assert with_collected and all(
        " ".join(c.split()).startswith("Process Creation (collected)") for c in with_collected
    )
    whole = kbmap("gaps", "-c", "sigma-attack18", "--limit", "1000", db=cli_db, check=True)
    assert "showing" not in whole.stdout and f"{len(uncovered)} gaps" in whole.stdout


def _citations(text: str) -> list[str]:
    names: list[str] = []
    for name in re.findall(r"\(Citation:\s*([^)]*)\)", text):
        if name.strip() not in names:
            names.append(name.strip())
    return names


def test_technique_page_numbers_citations_names_users_and_prints_seed_rules(
    cli_db: str, settings: Settings
) -> None:
    out = kbmap("technique", "T1550.001", "--version", "17.1", db=cli_db, check=True).stdout
    lines = [line.strip() for line in out.splitlines()]
    # the seed's rule line, under its catalog
    seed = SEED.read_text().splitlines()
    rule = seed[seed.index("MaxPatrol SIEM knowledge base") + 2]
    assert rule.startswith("mitre_attck_lateral_movement: PT-CR-956")
    assert lines[lines.index(rule) - 1] == "maxpatrol-siem (1)"
    # citations: [n] in the text, the sources listed once, in order of first use
    technique = rawdata.by_ext_id(E17, "attack-pattern", "T1550.001")
    first = _citations(technique["description"])
    assert "(Citation:" not in out
    refs = lines[lines.index("References") + 1 :]
    assert refs[: len(first)] == [f"[{n}] {name}" for n, name in enumerate(first, 1)]
    flat = " ".join(out.replace("│", " ").split())  # the description's panel, unwrapped
    assert "container-based applications, and software-as-a-service (SaaS).[1] OAuth" in flat
    # the web page numbers them alike (one implementation)
    with TestClient(create_app(settings.model_copy(update={"database_url": cli_db}))) as client:
        page = client.get("/techniques/T1550.001?version=17.1").text
    web = [html.unescape(c) for c in re.findall(r'<li id="cite-\d+">(?:<a [^>]*>)?([^<]*)<', page)]
    assert refs == [f"[{n}] {name}" for n, name in enumerate(web, 1)]
    # groups and software by id and name
    objs = rawdata.by_stix_id(E17)
    users = {
        objs[r["source_ref"]]["type"]: f"{rawdata.ext_id(objs[r['source_ref']])} "
        f"{objs[r['source_ref']]['name']}"
        for r in rawdata.relationships(E17, "uses")
        if r["target_ref"] == technique["id"] and rawdata.active(objs[r["source_ref"]])
    }
    group_line = next(line for line in lines if line.startswith("Groups ("))
    software_line = next(line for line in lines if line.startswith("Software ("))
    assert users["intrusion-set"] in group_line
    assert (users.get("malware") or users["tool"]) in software_line
