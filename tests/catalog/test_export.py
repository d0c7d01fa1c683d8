"""CSV export: formula cells neutralised (OWASP), rows never broken, and an exact round trip."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from sqlmodel import Session

from app.catalog import service as catalog_service
from app.catalog.source import open_source
from app.core.config import Settings
from app.core.db import make_engine
from tests.conftest import CATALOGS

# OWASP's CSV injection page: cells starting with these are run as formulas
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HOSTILE_CSV = """# name: hostile
"# vendor: Evil, Inc;=1+1"
id,title,description,techniques,references,package
A-1,"=HYPERLINK(""http://x"",""click"")","+cmd|' /C calc'!A0",T1059.001,"=1+1;'quoted;@SUM(1)",-p
A-2,'already quoted,"line one
line two, and a comma",T1059.001@execution,,pkg
"""


def _export(settings: Settings, name: str) -> str:
    engine = make_engine(settings.database_url)
    with Session(engine) as s:
        content, media, _ = catalog_service.export_catalog(s, name=name, fmt="csv")
    engine.dispose()
    assert media == "text/csv"
    return content.decode()


def _import(settings: Settings, path: Path, name: str) -> None:
    engine = make_engine(settings.database_url)
    source = open_source(path, settings.limits)
    catalog_service.import_catalog(engine, settings, source=source, name=name)
    engine.dispose()


def _without_name(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith('"# name:'))


def test_formula_cells_are_neutralised_and_rows_hold(
    catalog_settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "hostile.csv").write_text(HOSTILE_CSV)
    _import(catalog_settings, tmp_path / "hostile.csv", "hostile")
    out = _export(catalog_settings, "hostile")
    rows = list(csv.reader(io.StringIO(out, newline="")))
    meta = [r for r in rows if r[0].startswith("#")]
    assert all(len(r) == 1 for r in meta)
    assert "# vendor: Evil, Inc;=1+1" in [r[0] for r in meta]
    header, *data = rows[len(meta) :]
    assert [r[header.index("id")] for r in data] == ["A-1", "A-2"]
    for row in data:
        assert len(row) == len(header)
        for cell in row:
            assert not any(item.startswith(FORMULA_STARTS) for item in cell.split(";")), cell
    a1 = dict(zip(header, data[0], strict=True))
    assert a1["title"] == '\'=HYPERLINK("http://x","click")'
    assert a1["references"] == "'=1+1;''quoted;'@SUM(1)"
    assert a1["package"] == "'-p"


def test_the_hostile_export_reimports_to_the_same_catalog(
    catalog_settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "hostile.csv").write_text(HOSTILE_CSV)
    _import(catalog_settings, tmp_path / "hostile.csv", "hostile")
    first = _export(catalog_settings, "hostile")
    (tmp_path / "again.csv").write_text(first)
    _import(catalog_settings, tmp_path / "again.csv", "again")
    engine = make_engine(catalog_settings.database_url)
    with Session(engine) as s:
        rules = {
            r.rule_id: r for r in catalog_service.list_rules(s, catalogs=["again"], limit=10).items
        }
        vendor = catalog_service.get_catalog(s, name="again").vendor
    engine.dispose()
    assert vendor == "Evil, Inc;=1+1"
    assert rules["A-1"].title == '=HYPERLINK("http://x","click")'
    assert rules["A-1"].references == ["=1+1", "'quoted", "@SUM(1)"]
    assert rules["A-1"].package == "-p"
    assert rules["A-2"].title == "'already quoted"
    assert rules["A-2"].description == "line one\nline two, and a comma"
    assert _without_name(_export(catalog_settings, "again")) == _without_name(first)


def _trimmed(text: str) -> str:
    """Whitespace at the edges of a value, which the canonical format trims by design (sigma
    keeps a reference as written, "... .bashrc. "), is the one thing a round trip may change."""
    return re.sub(r"\s*([;\"])\s*", r"\1", _without_name(text))


@pytest.mark.parametrize("name", [n for _, n in CATALOGS] + ["maxpatrol-siem"])
def test_shared_catalogs_round_trip_through_csv(
    catalog_settings: Settings, tmp_path: Path, name: str
) -> None:
    first = _export(catalog_settings, name)
    (tmp_path / "export.csv").write_text(first)
    _import(catalog_settings, tmp_path / "export.csv", "again")
    again = _export(catalog_settings, "again")
    assert _trimmed(again) == _trimmed(first)
    # the exact round trip: what the second import read, a third gives back byte for byte
    (tmp_path / "again.csv").write_text(again)
    _import(catalog_settings, tmp_path / "again.csv", "third")
    assert _without_name(_export(catalog_settings, "third")) == _without_name(again)


def test_a_hand_written_leading_quote_is_kept(catalog_settings: Settings, tmp_path: Path) -> None:
    """Without export's `# formula_prefix` line nothing is taken off a cell."""
    (tmp_path / "hand.csv").write_text("id,title,techniques\nH-1,'quoted title,T1059.001\n")
    _import(catalog_settings, tmp_path / "hand.csv", "hand")
    engine = make_engine(catalog_settings.database_url)
    with Session(engine) as s:
        rule = catalog_service.get_rule(s, catalog="hand", rule_id="H-1")
    engine.dispose()
    assert rule.title == "'quoted title"
