"""STIX 2.1 export: valid for stix2-validator, counted against the raw tarballs and the raw ATT&CK
bundle, deterministic, and imported back to the same rules and mappings for every shared catalog;
the route and the CLI."""

from __future__ import annotations

import gzip
import json
import re
import tarfile
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from sqlalchemy import Engine
from sqlmodel import Session, select
from stix2validator import validate_instance, validate_string

from app.catalog import service as catalog_service
from app.catalog.export import EXPORTS
from app.catalog.source import open_source, source_from_bytes
from app.catalog.stix_bundle import NAMESPACE
from app.catalog.tables import Catalog, Rule
from app.core.config import Settings
from app.core.db import make_engine
from tests.catalog.rawcatalogs import sigma_rules, xp_rules
from tests.cli.test_attack import kbmap
from tests.conftest import attack_file, catalog_file

pytestmark = pytest.mark.integration
SHARED = ("sigma-attack18", "sigma", "open-xp-rules", "maxpatrol-siem")
SMALL = ("open-xp-rules", "maxpatrol-siem")
FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER
TECHNIQUE = re.compile(r"T(\d{4})(?:[./](\d{3}))?")


@pytest.fixture(scope="module")
def bundles(catalog_engine: Engine) -> dict[str, bytes]:
    with Session(catalog_engine) as s:
        return {n: catalog_service.export_catalog(s, name=n, fmt="stix")[0] for n in SHARED}


def _objects(data: bytes, kind: str | None = None) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = json.loads(data)["objects"]
    return [o for o in objs if kind is None or o["type"] == kind]


@pytest.mark.parametrize("name", SMALL)
def test_small_bundles_pass_the_validator_whole(bundles: dict[str, bytes], name: str) -> None:
    results = validate_string(bundles[name].decode())
    assert results.is_valid, [str(e) for e in results.errors]
    assert results.errors == []
    print(f"{name}: {len(results.warnings)} validator warnings")


@pytest.mark.parametrize("name", ["sigma-attack18", "sigma"])
def test_sigma_bundles_pass_the_validator_object_by_object(
    bundles: dict[str, bytes], name: str
) -> None:
    """Every object through stix2-validator, one by one (about 2 ms an object, 20 s a bundle;
    the validator's whole-bundle call checks each object the same way but also runs the bundle
    schema over the 8,000-object list, which took 825 s), and the envelope with one object."""
    objs = _objects(bundles[name])
    warnings = 0
    for obj in objs:
        result = validate_instance(obj)
        assert result.is_valid and result.errors == [], (obj["id"], [str(e) for e in result.errors])
        warnings += len(result.warnings)
    assert {o["type"] for o in objs} == {"identity", "indicator", "relationship", "grouping"}
    urls = [r["url"] for o in objs for r in o.get("external_references", [])]
    assert urls and all(FORMAT_CHECKER.conforms(u, "uri") for u in urls)
    envelope = json.loads(bundles[name]) | {"objects": objs[:1]}
    result = validate_instance(envelope)
    assert result.is_valid and result.errors == [], [str(e) for e in result.errors]
    print(f"{name}: {warnings} validator warnings on {len(objs)} objects")


@cache
def _raw_attack() -> tuple[dict[str, str], dict[str, str], set[str]]:
    """From the raw 18.1 bundle: technique id → STIX id, revoked id → its replacement's id, and
    the ids of live (neither revoked nor deprecated) techniques."""
    with gzip.open(attack_file("enterprise-attack-18.1.json.gz")) as f:
        objs = json.loads(f.read())["objects"]
    tid: dict[str, str] = {}
    live: set[str] = set()
    for o in objs:
        if o["type"] != "attack-pattern":
            continue
        ext = next(
            r["external_id"] for r in o["external_references"] if r["source_name"] == "mitre-attack"
        )
        tid[o["id"]] = ext
        if not o.get("revoked") and not o.get("x_mitre_deprecated"):
            live.add(ext)
    by_tid = {v: k for k, v in tid.items()}
    revoked = {
        tid[r["source_ref"]]: tid[r["target_ref"]]
        for r in objs
        if r["type"] == "relationship"
        and r["relationship_type"] == "revoked-by"
        and r["source_ref"] in tid
        and r["target_ref"] in tid
    }
    return by_tid, revoked, live


TARBALLS = {
    "sigma-attack18": "sigma-attack18-rules.tar.gz",
    "sigma": "sigma-rules.tar.gz",
    "open-xp-rules": "open-xp-rules-rules.tar.gz",
}


def _raw_bodies(tarball: str, *, xp: bool) -> dict[str, str]:
    """Rule path → its body as the tarball holds it: a Sigma file's text, an XP folder's rule.co."""
    out = {}
    with tarfile.open(catalog_file(tarball)) as tar:
        for m in tar:
            if m.isfile() and (m.name.endswith("/rule.co") if xp else m.name.endswith(".yml")):
                text = tar.extractfile(m).read().decode("utf-8-sig")  # type: ignore[union-attr]
                out[m.name.rsplit("/", 1)[0] if xp else m.name] = text
    return out


def _expected_targets(written: list[str]) -> set[str]:
    """The attack-patterns a rule should indicate: its live techniques, a revoked one's live
    end of the revoked-by chain."""
    by_tid, revoked, live = _raw_attack()
    out = set()
    for w in written:
        m = TECHNIQUE.search(w.upper())
        if not m:
            continue
        t = f"T{m.group(1)}" + (f".{m.group(2)}" if m.group(2) else "")
        for _ in range(20):
            if t not in revoked:
                break
            t = revoked[t]
        if t in live:
            out.add(by_tid[t])
    return out


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("sigma-attack18", lambda: sigma_rules("sigma-attack18-rules.tar.gz")),
        ("sigma", lambda: sigma_rules("sigma-rules.tar.gz")),
        ("open-xp-rules", xp_rules),
    ],
)
def test_indicators_and_relationships_match_the_raw_tarballs(
    bundles: dict[str, bytes], name: str, raw: Any
) -> None:
    """One indicator per rule file of the tarball, its techniques those the file writes, and
    one `indicates` per live technique (or revoked one's replacement) in the raw 18.1 bundle."""
    files: dict[str, list[str]] = raw()
    indicators = _objects(bundles[name], "indicator")
    by_path = {i["x_kbmap_path"]: i for i in indicators}
    assert len(indicators) == len(by_path) == len(files)
    assert set(by_path) == set(files)
    rels: dict[str, set[str]] = {}
    for r in _objects(bundles[name], "relationship"):
        assert r["relationship_type"] == "indicates"
        rels.setdefault(r["source_ref"], set()).add(r["target_ref"])
    bodies = _raw_bodies(TARBALLS[name], xp=name == "open-xp-rules")
    for path, techniques in files.items():
        ind = by_path[path]
        assert ind["pattern"] == bodies[path], path
        written = ind.get("x_kbmap_techniques", [])
        folded = [
            f"T{m.group(1)}" + (f".{m.group(2)}" if m.group(2) else "")
            for w in written
            if (m := TECHNIQUE.search(w.upper()))
        ]
        assert set(folded) == set(techniques), path
        assert rels.get(ind["id"], set()) == _expected_targets(written), path
    assert sum(len(v) for v in rels.values()) > len(files) // 2


def test_the_export_is_deterministic_and_ids_are_uuid5_of_catalog_and_rule(
    catalog_settings: Settings, bundles: dict[str, bytes]
) -> None:
    engine = make_engine(catalog_settings.database_url)
    with Session(engine) as s:
        again = catalog_service.export_catalog(s, name="open-xp-rules", fmt="stix")[0]
    assert again == bundles["open-xp-rules"]
    for ind in _objects(again, "indicator"):
        expected = uuid.uuid5(NAMESPACE, f"open-xp-rules/{ind['x_kbmap_rule_id']}")
        assert ind["id"] == f"indicator--{expected}"
    # a re-import of the same catalog (a new import time) keeps every id: OpenCTI updates
    tarball = catalog_file("open-xp-rules-rules.tar.gz")
    catalog_service.import_catalog(
        engine,
        catalog_settings,
        source=open_source(tarball, catalog_settings.limits),
        name="open-xp-rules",
        domain="enterprise",
        version="18.1",
    )
    with Session(engine) as s:
        later = catalog_service.export_catalog(s, name="open-xp-rules", fmt="stix")[0]
    engine.dispose()
    assert later != again
    assert {o["id"] for o in _objects(later)} == {o["id"] for o in _objects(again)}


@pytest.mark.parametrize("name", SMALL)
def test_the_fast_path_writes_what_stix2s_full_constructors_write(
    catalog_engine: Engine, bundles: dict[str, bytes], name: str
) -> None:
    with Session(catalog_engine) as s:
        strict = catalog_service.stix_export(s, name=name, strict=True)
    assert strict == bundles[name]


def _stored(engine: Engine, name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A catalog as the service reads it (rules with mappings, data components, analytics),
    each rule's body and extra, and the catalog's own facts."""
    with Session(engine) as s:
        page = catalog_service.list_rules(s, catalogs=[name], limit=100_000)
        rules = {r.rule_id: r.model_dump(exclude={"catalog"}) for r in page.items}
        c = s.exec(select(Catalog).where(Catalog.name == name)).one()
        rows = s.exec(select(Rule).where(Rule.catalog_id == c.id)).all()
        stored = {r.rule_id: (r.body, r.extra) for r in rows}
        facts = {
            k: getattr(c, k)
            for k in ("vendor", "product", "version", "domain", "attack_version", "rule_count")
        }
        facts["outcomes"] = c.report["outcomes"]
    return rules, stored, facts


@pytest.mark.parametrize("name", SHARED)
def test_export_then_import_gives_the_same_rules_and_mappings(
    catalog_settings: Settings, bundles: dict[str, bytes], name: str
) -> None:
    engine = make_engine(catalog_settings.database_url)
    source = source_from_bytes(f"{name}.stix.json", bundles[name], catalog_settings.limits)
    result = catalog_service.import_catalog(
        engine, catalog_settings, source=source, name=f"{name}-again"
    )
    assert result.catalog.format_id == "stix"
    rules, stored, facts = _stored(engine, name)
    rules2, stored2, facts2 = _stored(engine, f"{name}-again")
    engine.dispose()
    assert rules2 == rules
    assert stored2 == stored
    assert facts2 == facts
    assert len(rules) == len(_objects(bundles[name], "indicator"))
    if name != "maxpatrol-siem":  # its canonical rules carry no body: a reference stands in
        assert all(body for body, _ in stored.values())


def test_export_route_serves_stix_and_names_the_formats(catalog_client: TestClient) -> None:
    r = catalog_client.get("/api/v1/catalogs/open-xp-rules/export", params={"format": "stix"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/stix+json;version=2.1"
    assert 'filename="open-xp-rules.stix.json"' in r.headers["content-disposition"]
    assert r.json()["type"] == "bundle"
    bad = catalog_client.get("/api/v1/catalogs/open-xp-rules/export", params={"format": "xml"})
    assert bad.status_code == 422
    assert bad.json()["error"]["message"] == (
        f"export format must be one of {', '.join(EXPORTS)}, not 'xml'"
    )


@pytest.fixture
def db(catalog_settings: Settings) -> Iterator[str]:
    yield catalog_settings.database_url


def test_cli_exports_stix_and_refuses_an_unknown_format(db: str, tmp_path: Path) -> None:
    out = tmp_path / "xp.stix.json"
    kbmap(
        "catalog", "export", "open-xp-rules", "--format", "stix", "-o", str(out), db=db, check=True
    )
    assert len(_objects(out.read_bytes(), "indicator")) == len(xp_rules())
    proc = kbmap("catalog", "export", "open-xp-rules", "--format", "xml", db=db)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "kbmap: export format must be one of yaml, json, csv, stix, not 'xml'"
    ]
    help_text = kbmap("catalog", "export", "--help", db=db, check=True).stdout
    assert "yaml, json, csv, stix" in help_text


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_canonical_exports_carry_bodies_and_reimport_them(
    catalog_settings: Settings, fmt: str
) -> None:
    """The body a STIX export writes as `pattern` round-trips through the canonical format too
    (YAML and JSON; CSV leaves it out); open-xp-rules' bodies are its rule.co files."""
    engine = make_engine(catalog_settings.database_url)
    with Session(engine) as s:
        data = catalog_service.export_catalog(s, name="open-xp-rules", fmt=fmt)[0]
        csv_head = catalog_service.export_catalog(s, name="open-xp-rules", fmt="csv")[0]
    header = next(ln for ln in csv_head.decode().splitlines() if not ln.startswith('"#'))
    assert header.startswith('"id"') and "body" not in header
    source = source_from_bytes(f"xp.{fmt}", data, catalog_settings.limits)
    catalog_service.import_catalog(engine, catalog_settings, source=source, name="xp-again")
    _, stored, _ = _stored(engine, "open-xp-rules")
    _, again, _ = _stored(engine, "xp-again")
    engine.dispose()
    bodies = {rid: body for rid, (body, _) in stored.items()}
    assert {rid: body for rid, (body, _) in again.items()} == bodies
    with tarfile.open(catalog_file("open-xp-rules-rules.tar.gz")) as tar:
        raw = sorted(
            tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar
            if m.name.endswith("/rule.co") and m.name.rsplit("/", 1)[0] in xp_rules()
        )
    assert sorted(b for b in bodies.values() if b) == raw


def test_sentinel_rules_export_their_kql(catalog_settings: Settings) -> None:
    """A Sentinel rule's query is its indicator's pattern, in `kql`; a retired rule without a
    query is a reference. Expected queries are read from the fixture YAML directly."""
    import yaml

    folder = Path(__file__).parent.parent / "fixtures" / "catalogs" / "sentinel"
    queries = {}
    for path in folder.rglob("*.yaml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        if isinstance(doc, dict) and doc.get("id") and doc.get("name"):
            queries[str(doc["id"])] = doc.get("query")
    engine = make_engine(catalog_settings.database_url)
    source = open_source(str(folder), catalog_settings.limits)
    catalog_service.import_catalog(engine, catalog_settings, source=source, name="sentinel-fx")
    with Session(engine) as s:
        data = catalog_service.export_catalog(s, name="sentinel-fx", fmt="stix")[0]
    engine.dispose()
    indicators = _objects(data, "indicator")
    assert indicators and validate_string(data.decode()).is_valid
    by_rule = {i["x_kbmap_rule_id"]: i for i in indicators}
    assert set(by_rule) <= set(queries)
    for rule_id, ind in by_rule.items():
        query = queries[rule_id]
        if query:
            assert (ind["pattern_type"], ind["pattern"]) == ("kql", query)
        else:
            assert ind["pattern_type"] == "x-kbmap-reference"
