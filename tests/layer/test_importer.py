"""Layer import: a layer becomes a catalog (round trip through coverage); bad layers change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_token
from app.core.config import Settings
from app.main import create_app

GOOD = {
    "name": "hand kept",
    "domain": "enterprise-attack",
    "techniques": [{"techniqueID": "T1059", "score": 70}],
}


@pytest.fixture
def client(catalog_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(catalog_settings)) as c:
        _, token = create_token(
            c.app.state.engine, catalog_settings, name="layer-writer", scopes=["write"]
        )
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def upload(client: TestClient, doc: Any, name: str, **form: str) -> Any:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return client.post(
        "/api/v1/layers/import",
        files={"file": ("layer.json", data, "application/json")},
        data={"name": name, **form},
    )


def covered(client: TestClient, catalog: str) -> dict[str, float]:
    page = client.get(
        "/api/v1/coverage/techniques",
        params={"version": "18.1", "catalog": catalog, "covered": True, "limit": 1000},
    ).json()
    return {r["id"]: r["score"] for r in page["items"]}


def test_round_trip_of_a_coverage_layer(client: TestClient) -> None:
    before = covered(client, "maxpatrol-siem")
    assert {"T1550.001", "T1216", "T1218"} <= set(before)
    layer = client.get(
        "/api/v1/layers/coverage", params={"version": "18.1", "catalog": "maxpatrol-siem"}
    )
    r = upload(client, layer.content, "mp-layer")
    assert r.status_code == 201, r.text
    cat = r.json()
    assert (cat["name"], cat["domain"], cat["attack_version"]) == ("mp-layer", "enterprise", "18.1")
    assert cat["rule_count"] == len(before)
    assert set(covered(client, "mp-layer")) == set(before)
    rule = client.get("/api/v1/rules/mp-layer/mp-layer:T1550.001").json()
    assert [m["technique"] for m in rule["mappings"]] == ["T1550.001"]
    # the actor-layer use: an imported layer compares like any catalog
    cmp = client.get(
        "/api/v1/coverage/compare",
        params={"version": "18.1", "a": "mp-layer", "b": "maxpatrol-siem"},
    ).json()
    assert cmp["only_a"] == cmp["only_b"] == [] and set(cmp["both"]) == set(before)


def test_a_list_of_layers_with_tactics_and_an_old_attack_version(client: TestClient) -> None:
    tabs = [
        {**GOOD, "versions": {"attack": "17", "navigator": "4.9.1", "layer": "4.5"}},
        {
            "name": "tab two",
            "domain": "enterprise-attack",
            "techniques": [
                {"techniqueID": "T1059", "score": 90},
                {
                    "techniqueID": "T1053.005",
                    "tactic": "persistence",
                    "comment": "pinned",
                    "color": "#ff0000",
                },
                {"techniqueID": "T1003", "enabled": False, "color": "#cccccc"},
                {"techniqueID": "T1078", "showSubtechniques": True},
            ],
        },
    ]
    r = upload(client, tabs, "two-tabs")
    assert r.status_code == 201, r.text
    assert (r.json()["attack_version"], r.json()["rule_count"]) == ("17.1", 2)
    rules = client.get("/api/v1/rules", params={"catalog": "two-tabs"}).json()["items"]
    assert sorted(x["rule_id"] for x in rules) == [
        "two-tabs:T1053.005:persistence",
        "two-tabs:T1059",
    ]
    assert {x["rule_id"]: x["severity"] for x in rules}["two-tabs:T1059"] == "critical"


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (
            {
                **GOOD,
                "techniques": [{"techniqueID": "T1059"}, {"techniqueID": "T1003", "score": "high"}],
            },
            "techniques[1].score",
        ),
        ({**GOOD, "domain": "pre-attack"}, "domain"),
        ({**GOOD, "techniques": [{"techniqueID": "1059"}]}, "techniques[0].techniqueID"),
        (
            {**GOOD, "gradient": {"colors": ["#fff", "#000"], "minValue": 9, "maxValue": 1}},
            "gradient",
        ),
        ([GOOD, {**GOOD, "name": ""}], "[1].name"),
        ({**GOOD, "techniques": [{"techniqueID": "T1059", "score": 0}]}, "no technique entry"),
        ([GOOD, {**GOOD, "domain": "ics-attack"}], "several domains"),
        (
            {
                **GOOD,
                "x": [
                    [
                        [
                            [
                                [
                                    [
                                        [
                                            [
                                                [
                                                    [
                                                        [
                                                            [
                                                                [
                                                                    [
                                                                        [
                                                                            [
                                                                                [
                                                                                    [
                                                                                        [
                                                                                            [
                                                                                                [
                                                                                                    [
                                                                                                        [
                                                                                                            [
                                                                                                                [
                                                                                                                    [
                                                                                                                        [
                                                                                                                            [
                                                                                                                                [
                                                                                                                                    [
                                                                                                                                        [
                                                                                                                                            [
                                                                                                                                                [
                                                                                                                                                    [
                                                                                                                                                        [
                                                                                                                                                            [
                                                                                                                                                                [
                                                                                                                                                                    [
                                                                                                                                                                        [
                                                                                                                                                                            [
                                                                                                                                                                                [
                                                                                                                                                                                    [
                                                                                                                                                                                        [
                                                                                                                                                                                            [
                                                                                                                                                                                                [
                                                                                                                                                                                                    [
                                                                                                                                                                                                        [
                                                                                                                                                                                                            [
                                                                                                                                                                                                                [
                                                                                                                                                                                                                    [
                                                                                                                                                                                                                        [
                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                                        1
                                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                ]
                                                                                                                                                                                                            ]
                                                                                                                                                                                                        ]
                                                                                                                                                                                                    ]
                                                                                                                                                                                                ]
                                                                                                                                                                                            ]
                                                                                                                                                                                        ]
                                                                                                                                                                                    ]
                                                                                                                                                                                ]
                                                                                                                                                                            ]
                                                                                                                                                                        ]
                                                                                                                                                                    ]
                                                                                                                                                                ]
                                                                                                                                                            ]
                                                                                                                                                        ]
                                                                                                                                                    ]
                                                                                                                                                ]
                                                                                                                                            ]
                                                                                                                                        ]
                                                                                                                                    ]
                                                                                                                                ]
                                                                                                                            ]
                                                                                                                        ]
                                                                                                                    ]
                                                                                                                ]
                                                                                                            ]
                                                                                                        ]
                                                                                                    ]
                                                                                                ]
                                                                                            ]
                                                                                        ]
                                                                                    ]
                                                                                ]
                                                                            ]
                                                                        ]
                                                                    ]
                                                                ]
                                                            ]
                                                        ]
                                                    ]
                                                ]
                                            ]
                                        ]
                                    ]
                                ]
                            ]
                        ]
                    ]
                ],
            },
            "nesting",
        ),
        ([], "empty list"),
    ],
)
def test_bad_layers_are_refused_and_nothing_is_created(
    client: TestClient, doc: Any, needle: str
) -> None:
    r = upload(client, doc, "bad-layer")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert needle in err["message"] or needle in str(err["location"]), err
    assert client.get("/api/v1/catalogs/bad-layer").status_code == 404


def test_bad_name_and_a_read_only_caller(client: TestClient) -> None:
    assert upload(client, GOOD, "no spaces allowed").status_code == 422
    del client.headers["Authorization"]
    assert upload(client, GOOD, "anon").status_code == 401
    assert client.get("/api/v1/catalogs/anon").status_code == 404


def kbmap(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KBMAP_DATABASE_URL": db, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_writes_layers_pictures_and_imports(catalog_settings: Settings, tmp_path: Path) -> None:
    db = catalog_settings.database_url
    out = tmp_path / "cov.json"
    proc = kbmap(
        "layer", "coverage", "-c", "maxpatrol-siem", "--version", "18.1", "-o", str(out), db=db
    )
    assert proc.returncode == 0, proc.stderr
    d = json.loads(out.read_text())
    assert {e["techniqueID"] for e in d["techniques"] if "score" in e} >= {
        "T1550.001",
        "T1216",
        "T1218",
    }
    svg = kbmap("layer", "threat", "-g", "G0016", "--svg", db=db)
    assert svg.returncode == 0 and svg.stdout.startswith("<svg"), svg.stderr
    imported = kbmap("layer", "import", str(out), "--name", "from-cli", db=db)
    assert imported.returncode == 0, imported.stderr
    n = sum(1 for e in d["techniques"] if "score" in e)
    assert imported.stdout.strip() == f"catalog from-cli: {n} rules against ATT&CK enterprise 18.1"
    bad = kbmap("layer", "telemetry", db=db)
    assert bad.returncode == 1 and bad.stderr.startswith("kbmap: ") and "collected" in bad.stderr
