"""The technique page is cached, and never outlives what it was made from.

The cache is per process; these tests change the database through the API and, as another
process would, through a separate engine, and check the next page shows it.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.attack import service as attack_service
from app.catalog import service as catalog_service
from app.catalog.source import source_from_bytes
from app.core.config import Settings
from app.core.db import make_engine
from app.technique_page import service as page_service

PAGE = "/api/v1/techniques/T1550.001"


def _catalog(*rules: tuple[str, str]) -> bytes:
    lines = ["name: team", "rules:"]
    for rule_id, technique in rules:
        lines += [
            f"  - id: {rule_id}",
            f"    title: rule {rule_id}",
            f"    techniques: [{technique}]",
        ]
    return ("\n".join(lines) + "\n").encode()


def _team_rules(catalog_client: TestClient) -> list[str]:
    r = catalog_client.get(PAGE, params={"catalog": "team"})
    assert r.status_code == 200, r.text
    return [rule["rule_id"] for rule in r.json()["rules"]]


def test_cached_page_is_the_rendered_page(
    catalog_client: TestClient, catalog_settings: Settings
) -> None:
    first = catalog_client.get(PAGE)
    again = catalog_client.get(
        "/api/v1/techniques/t1550.001"
    )  # ids are case-insensitive: one entry
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    engine = make_engine(catalog_settings.database_url)
    with Session(engine) as session:
        releases = attack_service.releases_for_lookup(session, domain=None, version=None)
        fresh = page_service.get_technique_page(session, releases=releases, attack_id="T1550.001")
    engine.dispose()
    assert first.json() == fresh.model_dump(mode="json")
    assert {r["rule_id"] for r in first.json()["rules"]} >= {"PT-CR-956"}


def test_reimport_and_delete_through_the_api_show_at_once(catalog_client: TestClient) -> None:
    upload = {"file": ("team.yaml", _catalog(("A-1", "T1550.001"), ("A-2", "T1550.001")))}
    assert catalog_client.post("/api/v1/catalogs", files=upload).status_code == 201
    assert _team_rules(catalog_client) == ["A-1", "A-2"]
    replace = {"file": ("team.yaml", _catalog(("B-1", "T1550.001"), ("B-2", "T1003")))}
    assert catalog_client.post("/api/v1/catalogs", files=replace).status_code == 201
    assert _team_rules(catalog_client) == ["B-1"]
    assert "B-1" in [r["rule_id"] for r in catalog_client.get(PAGE).json()["rules"]]
    assert catalog_client.delete("/api/v1/catalogs/team").status_code == 204
    assert catalog_client.get(PAGE, params={"catalog": "team"}).status_code == 404
    assert "B-1" not in [r["rule_id"] for r in catalog_client.get(PAGE).json()["rules"]]


def test_a_change_made_by_another_process_shows_at_once(
    catalog_client: TestClient, catalog_settings: Settings
) -> None:
    before = [r["rule_id"] for r in catalog_client.get(PAGE).json()["rules"]]
    other = make_engine(catalog_settings.database_url)  # not the app's engine, not its cache
    source = source_from_bytes("team.yaml", _catalog(("C-1", "T1550.001")), catalog_settings.limits)
    catalog_service.import_catalog(other, catalog_settings, source=source)
    assert _team_rules(catalog_client) == ["C-1"]
    assert sorted([r["rule_id"] for r in catalog_client.get(PAGE).json()["rules"]]) == sorted(
        [*before, "C-1"]
    )
    catalog_service.delete_catalog(other, name="team")
    other.dispose()
    assert [r["rule_id"] for r in catalog_client.get(PAGE).json()["rules"]] == before


def test_unknown_ids_and_catalogs_stay_errors(catalog_client: TestClient) -> None:
    for _ in range(2):  # an error is never cached as a page
        missing = catalog_client.get("/api/v1/techniques/T9999")
        assert missing.status_code == 404
        assert missing.json()["error"]["message"].startswith("technique T9999 is not in ATT&CK")
        assert catalog_client.get(PAGE, params={"catalog": "nope"}).status_code == 404
    assert catalog_client.get(PAGE).status_code == 200
