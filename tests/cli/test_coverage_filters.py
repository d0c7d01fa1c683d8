"""CLI filters take every form kbmap prints; an unknown value is one stderr line (real process)."""

from __future__ import annotations

import json

from app.core.config import Settings
from tests.api.test_filters import raw_in_tactic, raw_platforms, raw_tactics
from tests.cli.test_attack import kbmap
from tests.coverage.test_coverage import _group_techniques


def _gap_ids(stdout: str) -> set[str]:
    return {g["id"] for g in json.loads(stdout)["items"]}


def test_tactic_and_group_forms_give_the_same_answer(loaded_settings: Settings) -> None:
    db = loaded_settings.database_url
    lateral = raw_in_tactic("lateral-movement")
    for form in ("Lateral Movement", "TA0008"):
        out = kbmap("gaps", "--tactic", form, "--limit", "1000", "--json", db=db, check=True)
        assert _gap_ids(out.stdout) == lateral, form  # no catalog: every technique is a gap
    out = kbmap("gaps", "--groups", "Cozy Bear", "--limit", "1000", "--json", db=db, check=True)
    assert _gap_ids(out.stdout) == _group_techniques("G0016")


def test_unknown_values_are_one_line_listing_the_known_ones(loaded_settings: Settings) -> None:
    db = loaded_settings.database_url
    tactic = kbmap("coverage", "--tactic", "nope", db=db)
    assert tactic.returncode == 1
    (line,) = tactic.stderr.splitlines()
    assert line.startswith("kbmap: tactic: unknown tactic 'nope' in ATT&CK enterprise 18.1")
    assert all(t["name"] in line and t["x_mitre_shortname"] in line for t in raw_tactics())
    platform = kbmap("layer", "coverage", "--platform", "Plan 9", db=db)
    assert platform.returncode == 1
    (line,) = platform.stderr.splitlines()
    assert "unknown platform 'Plan 9'" in line and all(p in line for p in raw_platforms())
    group = kbmap("gaps", "--groups", "APT290", db=db)
    assert group.returncode == 1
    (line,) = group.stderr.splitlines()
    assert "unknown group, software or campaign 'APT290'" in line and "G0016 (APT29)" in line
