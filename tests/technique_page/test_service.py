"""The technique page with its rules, on the real shared catalogs, checked against the raw files."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session

from app.attack import service as attack_service
from app.technique_page import service as page_service
from tests.catalog import rawcatalogs


def test_seed_rule_is_on_the_technique_page(catalog_engine: Engine) -> None:
    with Session(catalog_engine) as s:
        releases = attack_service.releases_for_lookup(s, domain=None, version=None)
        page = page_service.get_technique_page(s, releases=releases, attack_id="T1550.001")
    pt = [r for r in page.rules if r.rule_id == "PT-CR-956"]
    assert [(r.catalog, r.package, r.name, r.title) for r in pt] == [
        (
            "maxpatrol-siem",
            "mitre_attck_lateral_movement",
            "Disable_Smartcard",
            "Smart Card is disabled in the registry",
        )
    ]
    sigma_direct = sorted(
        p for p, ts in rawcatalogs.sigma_rules("sigma-rules.tar.gz").items() if "T1550.001" in ts
    )
    assert len([r for r in page.rules if r.catalog == "sigma"]) == len(sigma_direct)


def test_parent_page_keeps_subtechnique_rules_apart(catalog_engine: Engine) -> None:
    raw = rawcatalogs.sigma_rules("sigma-attack18-rules.tar.gz")
    with Session(catalog_engine) as s:
        releases = attack_service.releases_for_lookup(s, domain=None, version=None)
        page = page_service.get_technique_page(
            s, releases=releases, attack_id="T1059", catalogs=["sigma-attack18"]
        )
    assert len(page.rules) == sum(1 for ts in raw.values() if "T1059" in ts)
    subs = {s.id for s in page.subtechniques}
    assert len(page.subtechnique_rules) == sum(
        1 for ts in raw.values() for t in set(ts) if t in subs
    )
