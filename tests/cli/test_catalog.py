"""`kbmap catalog` as a user runs it: a real process, its exit code and its output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_attack import kbmap
from tests.conftest import attack_file

pytestmark = pytest.mark.integration  # runs kbmap in a subprocess on a database it builds


def test_import_refuses_a_domain_the_catalog_contradicts(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.sqlite'}"
    kbmap("ingest", attack_file("ics-attack-18.1.json.gz"), db=db, check=True)
    f = tmp_path / "ent.yaml"
    f.write_text('name: ent\nattack: {domain: enterprise, version: "18.1"}\nrules:\n  - id: A\n')
    proc = kbmap("catalog", "import", str(f), "--domain", "ics", db=db)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "kbmap: domain ics contradicts the catalog, which declares ATT&CK enterprise"
    ]
    listed = kbmap("catalog", "list", "--json", db=db, check=True)
    assert json.loads(listed.stdout) == []
