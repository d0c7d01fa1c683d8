"""Search fixtures: the app on a module's own copy of the catalog database (reads only), and the
expected values read from the raw bundles and catalog files, never from app/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests import rawdata
from tests.conftest import ROOT

E18 = "enterprise-attack-18.1.json.gz"
E17 = "enterprise-attack-17.1.json.gz"
M18 = "mobile-attack-18.1.json.gz"
API = "/api/v1/search"


@pytest.fixture(scope="module")
def client(
    catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("search") / "kbmap.sqlite"
    shutil.copy(catalog_sqlite_file, db)
    with TestClient(create_app(Settings(database_url=f"sqlite:///{db}", environment="test"))) as c:
        yield c


def maxpatrol_rule(rule_id: str) -> dict[str, Any]:
    """A rule of the shipped MaxPatrol catalog, read raw."""
    doc = yaml.safe_load((ROOT / "kb" / "catalogs" / "maxpatrol-siem.yaml").read_text())
    (rule,) = [r for r in doc["rules"] if r["id"] == rule_id]
    return dict(rule)


def raw_name(bundle: str, stix_type: str, attack_id: str) -> str:
    return str(rawdata.by_ext_id(bundle, stix_type, attack_id)["name"])


def group(body: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [g for g in body["groups"] if g["kind"] == kind]
    assert found, (kind, [g["kind"] for g in body["groups"]])
    return dict(found[0])


def ids(body: dict[str, Any], kind: str) -> list[str]:
    return [h["id"] for h in group(body, kind)["hits"]]
