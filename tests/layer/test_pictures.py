"""Pictures (issue 18): layers split by platform are named by it; XLSX sheets name each
sub-technique as ATT&CK writes it ("Parent: Sub-technique"), checked against the raw bundle."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests import rawdata

E18 = "enterprise-attack-18.1.json.gz"


@pytest.fixture(scope="module")
def client(catalog_sqlite_file: Path) -> Iterator[TestClient]:
    s = Settings(database_url=f"sqlite:///{catalog_sqlite_file}", environment="test")
    with TestClient(create_app(s)) as c:
        yield c


def _raw_techniques() -> dict[str, dict[str, Any]]:
    return {
        rawdata.ext_id(o) or "": o
        for o in rawdata.objects(E18)
        if o["type"] == "attack-pattern" and rawdata.active(o)
    }


def test_split_by_platform_names_each_layer_by_its_platform(client: TestClient) -> None:
    r = client.get("/api/v1/layers/coverage", params={"version": "18.1", "split": "platform"})
    assert r.status_code == 200, r.text
    layers = r.json()
    raw = _raw_techniques().values()
    raw_platforms = {p for o in raw for p in o.get("x_mitre_platforms", [])}
    named = [x["name"].rsplit(" — ", 1) for x in layers]
    assert all(len(n) == 2 for n in named)
    assert {n[1] for n in named} == raw_platforms
    assert len(named) == len(raw_platforms)
    for x, (_, platform) in zip(layers, named, strict=True):
        assert x["filters"]["platforms"] == [platform]
    assert len({x["name"] for x in layers}) == len(layers)  # no two read alike


def test_xlsx_names_sub_techniques_parent_colon_name(client: TestClient) -> None:
    r = client.get("/api/v1/layers/threat.xlsx", params={"version": "18.1", "groups": "G0016"})
    assert r.status_code == 200
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    raw = _raw_techniques()
    used: set[str] = set()
    rows = wb["entries"].iter_rows(min_row=2, values_only=True)
    for tid, name, _tactic, _score, _colour, enabled, *_ in rows:
        assert tid in raw
        if "." in str(tid):
            parent = raw[str(tid).split(".")[0]]
            assert name == f"{parent['name']}: {raw[str(tid)]['name']}"
            if enabled:
                used.add(str(tid))
        else:
            assert name == raw[str(tid)]["name"]
    assert len(used) > 10
    # the matrix sheet lists the used sub-techniques under their parents, by the same name
    cells = [str(c.value) for col in wb["matrix"].iter_cols(min_row=5) for c in col if c.value]
    listed = set()
    for text in (c.strip() for c in cells if c.startswith("  ")):
        tid, name = text.split(" ", 1)
        parent = raw[tid.split(".")[0]]
        assert name == f"{parent['name']}: {raw[tid]['name']}"
        listed.add(tid)
    assert listed == used
