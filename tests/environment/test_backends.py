"""An environment on both backends: the import's JSON columns (a log source written as a string
or a mapping, quality, platforms) read back the same on SQLite and PostgreSQL, and a delete
cascades to its systems and log sources."""

from __future__ import annotations

import gzip
import json
import re

import pytest
import yaml
from sqlalchemy import Engine, text

from app.core.config import Settings
from app.core.db import read_session
from app.environment import service as environment_service
from tests.conftest import ATTACK_DIR, _ingest

DOC = {
    "name": "both",
    "systems": [
        {
            "name": "ws",
            "platforms": ["Windows"],
            "log_sources": [
                {
                    "data_component": "Process Creation",
                    "quality": {"timeliness": 4, "retention": 2},
                },
                {"log_source": {"product": "windows", "category": "process_creation"}},
                {"log_source": "WinEventLog:Security EventCode=4624"},
                {"data_component": "No Such Component", "since": "2024-05-01"},
            ],
        }
    ],
}


def _feeding(name: str, event: str) -> list[str]:
    """Data components ATT&CK 18.1 says the event feeds: data components' log sources and
    analytics' log-source references naming it (channel "EventCode=4624" or a list of codes)."""
    with gzip.open(ATTACK_DIR / "enterprise-attack-18.1.json.gz", "rb") as fh:
        objects = [o for o in json.load(fh)["objects"] if not o.get("revoked")]
    names = {o["id"]: o["name"] for o in objects if o["type"] == "x-mitre-data-component"}
    out = set()
    for o in objects:
        refs = o.get("x_mitre_log_sources", []) + o.get("x_mitre_log_source_references", [])
        for ref in refs:
            codes = (
                re.findall(r"\d+", ref.get("channel", ""))
                if "EventCode" in ref.get("channel", "")
                else []
            )
            if ref.get("name") == name and event in codes:
                out.add(names.get(ref.get("x_mitre_data_component_ref", o["id"]), ""))
    return sorted(out - {""})


def test_an_environment_reads_back_the_same_on_both_backends(
    empty_engine: Engine, settings: Settings
) -> None:
    _ingest(empty_engine, "enterprise-attack-18.1.json.gz")
    data = yaml.safe_dump(DOC, sort_keys=False).encode()
    result = environment_service.import_environment(
        empty_engine, settings, file_name="both.yaml", data=data
    )
    written = [s.written for s in result.environment.systems[0].log_sources]
    assert written == [
        "Process Creation",
        "product=windows; category=process_creation",
        "WinEventLog:Security EventCode=4624",
        "No Such Component",
    ]
    with read_session(empty_engine) as session:
        again = environment_service.get_environment(session, name="both")
        telemetry = environment_service.environment_telemetry(session, name="both")
    assert again == result.environment
    ws = again.systems[0].log_sources
    assert ws[0].quality is not None and ws[0].quality.factor == 0.6
    assert ws[1].data_components == ["Process Creation"]
    assert ws[2].data_components == _feeding("WinEventLog:Security", "4624")
    assert ws[3].data_components == [] and ws[3].since == "2024-05-01"
    assert [u.written for u in again.report.unplaced] == ["No Such Component"]
    # the best factor of the sources giving each (the unscored ones: 1)
    assert telemetry.systems[0].components == {
        c.lower(): 1.0 for c in ["Process Creation", *_feeding("WinEventLog:Security", "4624")]
    }
    environment_service.delete_environment(empty_engine, name="both")
    with empty_engine.connect() as conn:
        left = [
            conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
            for t in ("environment", "environment_system", "environment_log_source")
        ]
    assert left == [0, 0, 0]


pytestmark = pytest.mark.integration
