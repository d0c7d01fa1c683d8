"""Hostile catalogs through `kbmap`: one line on stderr, and no raw escape sequence on a terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.catalog.test_routes_hostile import billion_laughs
from tests.cli.test_attack import kbmap
from tests.conftest import attack_file

ESC = "\x1b"


@pytest.fixture(scope="module")
def ics_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database holding ICS 18.1 (the smallest release), made by `kbmap ingest`."""
    db = f"sqlite:///{tmp_path_factory.mktemp('ics') / 'k.sqlite'}"
    kbmap("ingest", attack_file("ics-attack-18.1.json.gz"), db=db, check=True)
    return db


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_alias_bomb_is_one_line(ics_db: str, tmp_path: Path, encoding: str) -> None:
    bomb = tmp_path / "bomb.yml"
    bomb.write_bytes(billion_laughs(9).encode(encoding))
    proc = kbmap("catalog", "import", str(bomb), "--format", "sigma", db=ics_db)
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert line.startswith("kbmap: ") and "YAML aliases repeat more than" in line


def test_deep_toml_is_one_line(ics_db: str, tmp_path: Path) -> None:
    rule = tmp_path / "deep.toml"
    rule.write_text(
        '[metadata]\nmaturity = "production"\n[rule]\nrule_id = "d-1"\nname = "deep"\n'
        "note = " + "[" * 2000 + "]" * 2000 + "\n"
    )
    proc = kbmap("catalog", "import", str(rule), "--format", "elastic", db=ics_db)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"kbmap: {rule.name}, line 6: TOML nests deeper than 32 levels (1 error(s); nothing"
        " imported)"
    ]


def test_terminal_output_carries_no_escape_sequences(ics_db: str, tmp_path: Path) -> None:
    """Rule text the importer keeps (a package, a tactic as written) reaches `catalog import`,
    `catalog show` and `technique` with its control characters replaced and markup shown."""
    doc = {
        "name": "evil",
        "attack": {"domain": "ics"},
        "rules": [
            {
                "id": "E-1",
                "title": "clear\x1b[2Jscreen",
                "package": "pkg\x1b]0;owned\x07",
                "techniques": ["T0807"],
                "tactics": ["[red]x\x1b[31m"],
            }
        ],
    }
    f = tmp_path / "evil.json"
    f.write_text(json.dumps(doc))
    outputs = [
        kbmap("catalog", "import", str(f), db=ics_db, check=True).stdout,
        kbmap("catalog", "show", "evil", db=ics_db, check=True).stdout,
        kbmap("technique", "T0807", db=ics_db, check=True).stdout,
    ]
    for out in outputs:
        assert ESC not in out and "\x07" not in out
    assert "tactics not in this release: [red]x\ufffd[31m (1)" in outputs[0]
    assert "E-1" in outputs[2] and "pkg\ufffd]0;owned\ufffd" in outputs[2]
    assert "clear[2Jscreen" in outputs[2]  # the title was cleaned at import


def test_a_hostile_file_name_is_clean_in_errors_and_audit(ics_db: str, tmp_path: Path) -> None:
    name = str(tmp_path / "no\x1b[2Jsuch.yaml")
    proc = kbmap("catalog", "import", name, db=ics_db)
    assert proc.returncode == 1
    assert ESC not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"kbmap: {tmp_path}/no\ufffd[2Jsuch.yaml: no such file or folder"
    ]
    audit = kbmap("audit", db=ics_db, check=True).stdout  # the failed import, its target
    assert ESC not in audit and "no\ufffd[2Jsuch.yaml" in audit.replace("\n", "")


def test_csv_export_is_formula_safe_and_reimports(ics_db: str, tmp_path: Path) -> None:
    f = tmp_path / "formulas.csv"
    f.write_text(
        "# name: formulas\n# attack.domain: ics\nid,title,techniques,references\n"
        'F-1,"=cmd|\' /C calc\'!A0",T0807,"@SUM(1);a\\;b"\n'
    )
    kbmap("catalog", "import", str(f), db=ics_db, check=True)
    out = kbmap("catalog", "export", "formulas", "-f", "csv", db=ics_db, check=True).stdout
    assert "\"'=cmd|' /C calc'!A0\"" in out
    again = tmp_path / "again.csv"
    again.write_text(out.replace("# name: formulas", "# name: again"))
    kbmap("catalog", "import", str(again), db=ics_db, check=True)
    back = kbmap("catalog", "export", "again", "-f", "csv", db=ics_db, check=True).stdout
    assert back == out.replace("# name: formulas", "# name: again")
