"""Catalog import on the real shared catalogs, checked against the raw files and bundle."""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, delete, func, select
from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.tables import Release
from app.catalog import service as catalog_service
from app.catalog.models import OUTCOMES
from app.catalog.source import open_source
from app.catalog.tables import Catalog, Rule
from app.core.config import CoverageWeights, Settings
from app.core.db import make_engine
from app.core.errors import InvalidInput, NotFound
from app.coverage import service as coverage_service
from tests import rawdata
from tests.catalog import rawcatalogs
from tests.conftest import LOADED, ROOT

E18 = "enterprise-attack-18.1.json.gz"


def _expected_outcomes(rules: dict[str, list[str]]) -> Counter[str]:
    """Outcome per mapping from the raw 18.1 bundle: active, revoked→active, deprecated, unknown."""
    objs = rawdata.objects(E18)
    status = {}
    for o in objs:
        if o["type"] == "attack-pattern":
            status[rawdata.ext_id(o)] = (
                "revoked"
                if o.get("revoked")
                else ("deprecated" if o.get("x_mitre_deprecated") else "ok")
            )
    by_id = rawdata.by_stix_id(E18)
    nxt = {
        rawdata.ext_id(by_id[r["source_ref"]]): rawdata.ext_id(by_id[r["target_ref"]])
        for r in rawdata.relationships(E18, "revoked-by")
        if r["source_ref"].startswith("attack-pattern")
    }
    other = {
        rawdata.ext_id(o)
        for name in ("ics-attack-18.1.json.gz", "mobile-attack-18.1.json.gz")
        for o in rawdata.objects(name)
        if o["type"] == "attack-pattern"
    }
    out: Counter[str] = Counter()
    for techs in rules.values():
        for t in techs:
            s = status.get(t)
            if s is None:
                out["wrong_domain" if t in other else "unknown"] += 1
            elif s == "revoked":
                end = t
                while status.get(end) == "revoked" and end in nxt:
                    end = nxt[end]
                out["remapped" if status.get(end) == "ok" else "deprecated"] += 1
            else:
                out[s] += 1
    return out


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("sigma-attack18", lambda: rawcatalogs.sigma_rules("sigma-attack18-rules.tar.gz")),
        ("sigma", lambda: rawcatalogs.sigma_rules("sigma-rules.tar.gz")),
        ("open-xp-rules", rawcatalogs.xp_rules),
    ],
)
def test_import_counts_match_the_raw_files(catalog_engine: Engine, name: str, raw: object) -> None:
    rules = raw()  # type: ignore[operator]
    with Session(catalog_engine) as s:
        report = catalog_service.get_catalog(s, name=name).report
    assert report.rules == len(rules)
    assert report.rules_with_technique == sum(1 for t in rules.values() if t)
    assert report.rules_without_technique == sum(1 for t in rules.values() if not t)
    assert report.distinct_techniques_written == len({t for ts in rules.values() for t in ts})
    expected = _expected_outcomes(rules)
    assert report.outcomes.model_dump() == {k: expected.get(k, 0) for k in OUTCOMES}


def _live(written: str) -> str | None:
    """The active 18.1 technique a written id lands on (revocations followed), from the raw
    bundle; None for deprecated, unknown or other-domain ids."""
    techniques, nxt, active = _revocations()
    end: str | None = written
    while end in techniques and techniques[end].get("revoked"):
        end = nxt.get(end)
    return end if end in active else None


@functools.cache
def _revocations() -> tuple[dict[str, dict[str, Any]], dict[str, str], set[str]]:
    """The raw 18.1 techniques by id, each revoked one's revoked-by id, the active ids: read once
    (a catalog asks for every one of its ~5,000 written ids)."""
    by_id = rawdata.by_stix_id(E18)
    techniques = {
        rawdata.ext_id(o): o for o in rawdata.objects(E18) if o["type"] == "attack-pattern"
    }
    nxt = {
        rawdata.ext_id(by_id[r["source_ref"]]): rawdata.ext_id(by_id[r["target_ref"]])
        for r in rawdata.relationships(E18, "revoked-by")
        if r["source_ref"].startswith("attack-pattern")
    }
    return techniques, nxt, rawdata.active_techniques(E18)


def test_counts_are_labelled_for_what_they_count(catalog_engine: Engine) -> None:
    """Import report: rules and techniques *mapped* (a live technique, any rule); coverage:
    techniques *covered* (score > 0: deprecated and unsupported rules weigh 0). The home page
    and the coverage summary show the same rules_mapped as the report."""
    tarball = "sigma-attack18-rules.tar.gz"
    rules, status = rawcatalogs.sigma_rules(tarball), rawcatalogs.sigma_status(tarball)
    live = {path: {t for w in ts if (t := _live(w))} for path, ts in rules.items()}
    zero = {"deprecated", "unsupported"}
    mapped = set().union(*live.values())
    covered = set().union(*(ts for p, ts in live.items() if status[p] not in zero))
    with Session(catalog_engine) as s:
        catalog = catalog_service.get_catalog_row(s, name="sigma-attack18")
        release = attack_service.get_release(s, domain="enterprise", version="18.1")
        scope = coverage_service.make_scope(s, release=release, catalogs=["sigma-attack18"])
        summary = coverage_service.summary(s, scope=scope, weights=CoverageWeights())
    report = catalog_service.catalog_read(catalog).report
    assert report.techniques_mapped == report.distinct_techniques_covered == len(mapped)
    assert report.rules_mapped == sum(1 for ts in live.values() if ts)
    [by_catalog] = summary.by_catalog
    assert (by_catalog.rules_mapped, by_catalog.techniques_covered) == (
        report.rules_mapped,
        len(covered),
    )
    assert summary.all.covered == len(covered) < len(mapped)


def test_sigma_attack19_rules_are_unknown_not_dropped(catalog_engine: Engine) -> None:
    rules = rawcatalogs.sigma_rules("sigma-rules.tar.gz")
    known = rawdata.active_techniques(E18) | {
        rawdata.ext_id(o) for o in rawdata.objects(E18) if o["type"] == "attack-pattern"
    }
    with_unknown = sum(1 for ts in rules.values() if any(t not in known for t in ts))
    with Session(catalog_engine) as s:
        report = catalog_service.get_catalog(s, name="sigma").report
        total = s.execute(
            select(func.count()).select_from(Rule).join(Catalog).where(Catalog.name == "sigma")
        ).scalar_one()
        unknown = catalog_service.list_rules(s, catalogs=["sigma"], outcome="unknown", limit=1)
    assert report.rules_with_unknown == with_unknown == 237
    assert unknown.total == 237
    assert total == len(rules)


def test_dll_side_loading_is_remapped_in_a_users_catalog(
    catalog_settings: Settings, tmp_path: Path
) -> None:
    """No shared Sigma rule still names T1574.002 (revoked by T1574.001 in 17.1); a user's may."""
    raw = rawdata.by_ext_id(E18, "attack-pattern", "T1574.002")
    assert raw.get("revoked") is True
    f = tmp_path / "dll.csv"
    f.write_text("id,techniques,title\nDLL-1,T1574.002,side-loading\n")
    engine = make_engine(catalog_settings.database_url)
    catalog_service.import_catalog(
        engine, catalog_settings, source=open_source(f, catalog_settings.limits)
    )
    with Session(engine) as s:
        rule = catalog_service.get_rule(s, catalog="dll", rule_id="DLL-1")
    [m] = rule.mappings
    assert (m.written, m.technique, m.outcome) == ("T1574.002", "T1574.001", "remapped")
    assert m.note == "revoked: T1574.002 → T1574.001"


@pytest.mark.parametrize(("old", "new"), [("T1086", "T1059.001")])
def test_revoked_ids_are_remapped_and_the_original_kept(
    catalog_engine: Engine, old: str, new: str
) -> None:
    raw = rawcatalogs.sigma_rules("sigma-rules.tar.gz")
    expected_paths = sorted(p for p, ts in raw.items() if old in ts)
    assert expected_paths, f"no raw sigma rule uses {old}"
    with Session(catalog_engine) as s:
        page = catalog_service.list_rules(
            s, catalogs=["sigma"], technique=new, outcome="remapped", limit=1000
        )
    hits = [
        (r.path, m)
        for r in page.items
        for m in r.mappings
        if m.outcome == "remapped"
        and m.technique == new
        and m.written.upper().endswith(old.upper())
    ]
    assert sorted(p for p, _ in hits) == expected_paths
    assert all(m.written.lower() == f"attack.{old.lower()}" for _, m in hits)


def test_reimport_replaces_atomically_and_bad_input_changes_nothing(
    catalog_settings: Settings, tmp_path: Path
) -> None:
    engine = make_engine(catalog_settings.database_url)
    good = tmp_path / "mine.yaml"
    good.write_text(
        "name: mine\nrules:\n  - id: R-1\n    techniques: [T1059.001]\n  - id: R-2\n    techniques: [t1086]\n"
    )
    first = catalog_service.import_catalog(
        engine, catalog_settings, source=open_source(good, catalog_settings.limits)
    )
    assert (
        first.replaced,
        first.catalog.rule_count,
        first.catalog.report.outcomes.remapped,
    ) == (False, 2, 1)
    bad = tmp_path / "mine-bad.yaml"
    bad.write_text("name: mine\nrules:\n  - id: R-1\n  - id: R-1\n")
    with pytest.raises(InvalidInput, match="R-1"):
        catalog_service.import_catalog(
            engine, catalog_settings, source=open_source(bad, catalog_settings.limits)
        )
    with Session(engine) as s:
        assert catalog_service.get_catalog(s, name="mine").rule_count == 2
    good.write_text("name: mine\nrules:\n  - id: R-9\n    techniques: [T1003]\n")
    again = catalog_service.import_catalog(
        engine, catalog_settings, source=open_source(good, catalog_settings.limits)
    )
    assert again.replaced is True
    with Session(engine) as s:
        assert [r.rule_id for r in catalog_service.list_rules(s, catalogs=["mine"]).items] == [
            "R-9"
        ]
    catalog_service.delete_catalog(engine, name="mine")
    with Session(engine) as s, pytest.raises(NotFound):
        catalog_service.get_catalog(s, name="mine")


def _only_enterprise_18(url: str) -> Engine:
    """The loaded copy with enterprise 17.1 deleted: enterprise 18.1 is all it holds of the domain."""
    engine = make_engine(url)
    with Session(engine) as s:
        s.execute(delete(Release).where(Release.domain == "enterprise", Release.version == "17.1"))
        s.commit()
    return engine


def test_a_catalog_made_against_an_unloaded_release_is_validated_against_the_newest(
    loaded_copy: str, settings: Settings
) -> None:
    shipped = ROOT / "kb" / "catalogs" / "maxpatrol-siem.yaml"
    declared = yaml.safe_load(shipped.read_text())["attack"]
    engine = _only_enterprise_18(loaded_copy)
    result = catalog_service.import_catalog(
        engine, settings, source=open_source(shipped, settings.limits)
    )
    left = [  # (major, minor) of the enterprise files the copy still holds, from their names
        tuple(int(x) for x in n.removesuffix(".json.gz").rsplit("-", 1)[1].split("."))
        for n in LOADED
        if n.startswith("enterprise-") and n != "enterprise-attack-17.1.json.gz"
    ]
    expected = "enterprise {}.{}".format(*max(left))
    fallback = result.catalog.release_fallback
    assert fallback is not None
    assert (fallback.declared, fallback.validated_against) == (
        f"{declared['domain']} {declared['version']}",
        expected,
    )
    assert f"{result.catalog.domain} {result.catalog.attack_version}" == expected
    assert result.catalog.report.warnings[0].message == (
        f"the catalog declares ATT&CK {fallback.declared}, which is not loaded; validated "
        f"against {expected}, the newest loaded release of its domain"
    )
    with Session(engine) as s:
        rule = catalog_service.get_rule(s, catalog="maxpatrol-siem", rule_id="PT-CR-956")
    assert [(m.technique, m.outcome) for m in rule.mappings] == [("T1550.001", "ok")]


def test_a_loaded_declared_release_is_used_without_a_fallback(catalog_engine: Engine) -> None:
    with Session(catalog_engine) as s:
        shipped = catalog_service.get_catalog(s, name="maxpatrol-siem")
    assert (shipped.stated_release, shipped.domain, shipped.attack_version) == (
        "enterprise 17.1",
        "enterprise",
        "17.1",
    )
    assert shipped.release_fallback is None


def test_a_domain_that_contradicts_the_catalog_is_refused(
    catalog_settings: Settings, tmp_path: Path
) -> None:
    engine = make_engine(catalog_settings.database_url)
    f = tmp_path / "ent.yaml"
    f.write_text('name: ent\nattack: {domain: enterprise, version: "18.1"}\nrules:\n  - id: A\n')
    with pytest.raises(
        InvalidInput, match="domain ics contradicts the catalog, which declares ATT&CK enterprise"
    ):
        catalog_service.import_catalog(
            engine, catalog_settings, source=open_source(f, catalog_settings.limits), domain="ics"
        )
    with Session(engine) as s, pytest.raises(NotFound):
        catalog_service.get_catalog(s, name="ent")


def test_export_round_trips_through_the_canonical_importer(
    catalog_settings: Settings, tmp_path: Path
) -> None:
    engine = make_engine(catalog_settings.database_url)
    with Session(engine) as s:
        original = catalog_service.list_rules(s, catalogs=["open-xp-rules"], limit=1000).items
        for fmt in ("yaml", "json", "csv"):
            content, _media, filename = catalog_service.export_catalog(
                s, name="open-xp-rules", fmt=fmt
            )
            (tmp_path / filename).write_bytes(content)
    for fmt in ("yaml", "json", "csv"):
        out = catalog_service.import_catalog(
            engine,
            catalog_settings,
            name=f"xp-{fmt}",
            source=open_source(tmp_path / f"open-xp-rules.{fmt}", catalog_settings.limits),
        )
        assert out.catalog.rule_count == len(original)
        with Session(engine) as s:
            back = {
                r.rule_id: r
                for r in catalog_service.list_rules(s, catalogs=[f"xp-{fmt}"], limit=1000).items
            }
        for r in original:
            got = back[r.rule_id]
            assert (got.title, got.severity) == (r.title, r.severity)
            assert sorted(m.technique or "" for m in got.mappings if m.outcome == "ok") == sorted(
                m.technique or "" for m in r.mappings if m.outcome == "ok"
            )


def test_rule_links_are_stored_once(catalog_engine: Engine) -> None:
    """Each (rule, analytic, technique) and (rule, data component, log source) is one row."""
    with catalog_engine.connect() as conn:
        for table, cols in (
            ("rule_analytic", "rule_pk, analytic, technique"),
            ("rule_data_component", "rule_pk, data_component, log_source"),
        ):
            total = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
            distinct = conn.exec_driver_sql(
                f"SELECT count(*) FROM (SELECT DISTINCT {cols} FROM {table})"
            ).scalar()
            assert total == distinct > 0
