"""StixImporter: OpenCTI-like bundles built here, kbmap's own fields, and hostile bundles (each a
clear error, and through the import nothing written)."""

from __future__ import annotations

import copy
import gzip
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session

from app.catalog import registry
from app.catalog import service as catalog_service
from app.catalog.base import ParsedCatalog, ParsedRule
from app.catalog.formats.stix import MAX_PATTERN_CHARS, StixImporter
from app.catalog.source import open_source, source_from_bytes
from app.catalog.stix_bundle import RuleFacts, pattern_type
from app.core.config import Limits, Settings
from app.core.db import make_engine
from app.core.errors import InvalidInput
from tests.conftest import attack_file

LIMITS = Limits()
IMPORTER = StixImporter()
TS = "2025-03-01T10:00:00.000Z"
IDENTITY = "identity--0b5a1f3c-1d7e-4c44-9a66-0f8e2a1b7c01"
SIGMA_IND = "indicator--2a0c5e1d-6f4b-4b1a-8c3e-1f2d3e4a5b61"
STIX_IND = "indicator--3b1d6f2e-7a5c-4c2b-9d4f-2a3e4f5b6c72"
LONE_IND = "indicator--4c2e7a3f-8b6d-4d3c-8e5a-3b4f5a6c7d83"
AP_1059 = "attack-pattern--970a3432-3237-47ad-bcca-7d8cbb217736"  # T1059.001 in ATT&CK
AP_1003 = "attack-pattern--0a3ead4e-6d47-4ccb-854c-a6a4f9d96b22"  # T1003 in ATT&CK
AP_ABSENT = "attack-pattern--5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
MALWARE = "malware--6f7a8b9c-0d1e-4f2a-9b3c-4d5e6f7a8b9c"


def _sdo(kind: str, oid: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "spec_version": "2.1", "id": oid, "created": TS, "modified": TS, **fields}


def _rel(kind: str, source: str, target: str, n: int) -> dict[str, Any]:
    rid = f"relationship--{n:08d}-0000-4000-8000-000000000000"
    return _sdo("relationship", rid, relationship_type=kind, source_ref=source, target_ref=target)


def _attack_pattern(oid: str, tid: str | None) -> dict[str, Any]:
    refs = [{"source_name": "mitre-attack", "external_id": tid}] if tid else []
    return _sdo("attack-pattern", oid, name=tid or "no id", external_references=refs)


def opencti_bundle() -> dict[str, Any]:
    """What an OpenCTI export of indicators looks like, with noise it must report."""
    sigma = "title: Encoded PowerShell\nlogsource:\n  product: windows\ndetection:\n  sel: 1\n"
    objects = [
        _sdo("identity", IDENTITY, name="ACME CTI", identity_class="organization"),
        _sdo(
            "indicator",
            SIGMA_IND,
            name="Encoded PowerShell",
            description="Sigma from OpenCTI",
            pattern=sigma,
            pattern_type="sigma",
            valid_from=TS,
            labels=["powershell", "sigma"],
            created_by_ref=IDENTITY,
            kill_chain_phases=[{"kill_chain_name": "mitre-attack", "phase_name": "execution"}],
            external_references=[{"source_name": "blog", "url": "https://example.org/ps"}],
            x_mitre_platforms=["Windows"],
        ),
        _sdo(
            "indicator",
            STIX_IND,
            name="Mimikatz hash",
            pattern="[file:hashes.'SHA-256' = 'aa']",
            pattern_type="stix",
            valid_from=TS,
        ),
        _sdo("indicator", LONE_IND, name="Indicates nothing", pattern="x", pattern_type="yara"),
        _attack_pattern(AP_1059, "T1059.001"),
        _attack_pattern(AP_1003, "T1003"),
        _sdo("malware", MALWARE, name="Mimikatz", is_family=True),
        _rel("indicates", SIGMA_IND, AP_1059, 1),
        _rel("indicates", STIX_IND, AP_1003, 2),
        _rel("indicates", STIX_IND, AP_ABSENT, 3),
        _rel("indicates", STIX_IND, MALWARE, 4),
        _rel("based-on", SIGMA_IND, STIX_IND, 5),
    ]
    return {
        "type": "bundle",
        "id": "bundle--7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
        "objects": objects,
    }


def _parse(doc: Any, name: str = "b.json") -> ParsedCatalog:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return IMPORTER.parse(source_from_bytes(name, data, LIMITS), LIMITS)


def _errors(parsed: ParsedCatalog) -> list[str]:
    return [i.message for i in parsed.issues if i.severity == "error"]


def _warnings(parsed: ParsedCatalog) -> list[str]:
    return [i.message for i in parsed.issues if i.severity == "warning"]


def test_an_opencti_bundle_reads_indicators_and_their_techniques() -> None:
    parsed = _parse(opencti_bundle())
    assert _errors(parsed) == []
    rules = {r.rule_id: r for r in parsed.rules}
    assert list(rules) == [SIGMA_IND, STIX_IND, LONE_IND]
    sigma = rules[SIGMA_IND]
    assert (sigma.name, sigma.title, sigma.description) == (
        "Encoded PowerShell",
        "Encoded PowerShell",
        "Sigma from OpenCTI",
    )
    assert sigma.body == opencti_bundle()["objects"][1]["pattern"]
    assert sigma.techniques == ["T1059.001"]
    assert sigma.tactics == ["execution"]
    assert sigma.raw_tags == ["powershell", "sigma"]
    assert sigma.references == ["https://example.org/ps"]
    assert sigma.platforms == ["Windows"]
    assert sigma.extra == {
        "pattern_type": "sigma",
        "valid_from": TS,
        "created_by_ref": IDENTITY,
        "created_by": "ACME CTI",
    }
    assert rules[STIX_IND].techniques == ["T1003", AP_ABSENT]  # validation resolves the id
    assert rules[STIX_IND].extra["pattern_type"] == "stix"
    assert rules[LONE_IND].techniques == []  # still a rule, unmapped


def test_what_a_catalog_does_not_read_is_reported_not_dropped_silently() -> None:
    warnings = _warnings(_parse(opencti_bundle()))
    assert "1 malware object(s) ignored: a catalog reads indicators and what they indicate" in (
        warnings
    )
    assert any(w.startswith("1 relationship(s) of type based-on ignored") for w in warnings)
    assert any(w.startswith("1 indicates relationship(s) to malware ignored") for w in warnings)
    assert len(warnings) == 3


def test_an_attack_pattern_without_a_mitre_attack_id_is_a_warning() -> None:
    doc = opencti_bundle()
    doc["objects"][4] = _attack_pattern(AP_1059, None)
    parsed = _parse(doc)
    assert _errors(parsed) == []
    assert parsed.rules[0].techniques == []
    assert any("has no mitre-attack id" in w for w in _warnings(parsed))


def test_the_bundle_is_detected_as_stix_and_nothing_else_claims_it() -> None:
    data = json.dumps(opencti_bundle(), indent=2).encode()
    assert registry.detect(source_from_bytes("export.json", data, LIMITS)).format_id == "stix"
    canonical = b'{"name": "c", "rules": [{"id": "R-1", "techniques": ["T1059"]}]}'
    assert not IMPORTER.sniff(source_from_bytes("c.json", canonical, LIMITS))


def _hostile_cases() -> dict[str, tuple[bytes, str]]:
    """name → (file bytes, words the first error must hold)."""
    base = opencti_bundle()
    stix20 = copy.deepcopy(base)
    stix20["spec_version"] = "2.0"
    for obj in stix20["objects"]:
        obj.pop("spec_version")
    no_version = copy.deepcopy(base)
    no_version["objects"][1].pop("spec_version")
    huge = copy.deepcopy(base)
    huge["objects"][1]["pattern"] = "a" * (MAX_PATTERN_CHARS + 1)
    orphan = copy.deepcopy(base)
    missing = "indicator--00000000-0000-4000-8000-000000000000"
    orphan["objects"].append(_rel("indicates", missing, AP_1059, 9))
    twice = copy.deepcopy(base)
    twice["objects"].append(copy.deepcopy(base["objects"][2]))
    deep: Any = "x"
    for _ in range(200):
        deep = {"a": deep}
    nested = copy.deepcopy(base)
    nested["objects"][1] |= {"x_kbmap_rule_id": "R-1", "x_kbmap_extra": deep}
    too_deep = b'{"type": "bundle", "objects": [' + b"[" * 2000 + b"]" * 2000 + b"]}"
    kbmap = copy.deepcopy(base)
    kbmap["objects"][1] |= {"x_kbmap_rule_id": "R-1", "x_kbmap_techniques": "T1059"}
    return {
        "not json": (b"{not json", "not valid JSON"),
        "utf-16": (json.dumps(base).encode("utf-16"), "not UTF-8 text"),
        "not a bundle": (b'{"type": "indicator"}', "not a STIX bundle"),
        "stix 2.0": (json.dumps(stix20).encode(), "a STIX 2.0 bundle; kbmap reads STIX 2.1"),
        "no spec_version": (json.dumps(no_version).encode(), "spec_version must be 2.1"),
        "huge pattern": (json.dumps(huge).encode(), f"over {MAX_PATTERN_CHARS}"),
        "orphan relationship": (json.dumps(orphan).encode(), "is not an indicator of the bundle"),
        "duplicate indicator": (json.dumps(twice).encode(), f"indicator {STIX_IND} appears twice"),
        "deep nesting": (json.dumps(nested).encode(), "x_kbmap_extra nests deeper than 64"),
        "deeper than orjson reads": (too_deep, "not valid JSON"),
        "bad kbmap field": (json.dumps(kbmap).encode(), "x_kbmap_techniques is not texts"),
        "no indicator": (
            json.dumps({**base, "objects": base["objects"][4:6]}).encode(),
            "no indicator",
        ),
    }


HOSTILE = _hostile_cases()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_bundles_are_clear_errors(case: str) -> None:
    data, words = HOSTILE[case]
    errors = _errors(_parse(data))
    assert errors, case
    assert words in errors[0], errors


@pytest.mark.parametrize("case", ["utf-16", "stix 2.0", "orphan relationship", "huge pattern"])
def test_hostile_bundles_write_nothing(loaded_settings: Settings, case: str) -> None:
    engine = make_engine(loaded_settings.database_url)
    data, words = HOSTILE[case]
    with pytest.raises(InvalidInput, match="nothing imported") as exc:
        catalog_service.import_catalog(
            engine,
            loaded_settings,
            source=source_from_bytes("hostile.json", data, LIMITS),
            format_id="stix",
            name="hostile",
        )
    assert words in exc.value.message
    with Session(engine) as s:
        assert [c.name for c in catalog_service.list_catalogs(s)] == []
    engine.dispose()


def test_an_opencti_bundle_imports_with_its_mappings_resolved(loaded_settings: Settings) -> None:
    """T1059.001 and T1003 are live in enterprise 18.1 (read from the raw bundle)."""
    with gzip.open(attack_file("enterprise-attack-18.1.json.gz")) as f:
        raw = json.loads(f.read())
    live = {
        o["id"]: ref["external_id"]
        for o in raw["objects"]
        if o["type"] == "attack-pattern"
        and not o.get("revoked")
        and not o.get("x_mitre_deprecated")
        for ref in o.get("external_references", [])
        if ref.get("source_name") == "mitre-attack"
    }
    assert live[AP_1059] == "T1059.001" and live[AP_1003] == "T1003"
    engine = make_engine(loaded_settings.database_url)
    data = json.dumps(opencti_bundle()).encode()
    result = catalog_service.import_catalog(
        engine,
        loaded_settings,
        source=source_from_bytes("opencti.json", data, LIMITS),
        name="opencti",
        domain="enterprise",
        version="18.1",
    )
    assert result.catalog.format_id == "stix" and result.catalog.rule_count == 3
    assert result.catalog.vendor is None
    with Session(engine) as s:
        rules = catalog_service.list_rules(s, catalogs=["opencti"]).items
    mapped = {r.rule_id: [(m.technique, m.outcome) for m in r.mappings] for r in rules}
    assert mapped == {
        SIGMA_IND: [("T1059.001", "ok")],
        STIX_IND: [("T1003", "ok"), (None, "unknown")],  # AP_ABSENT is in no release
        LONE_IND: [],
    }
    engine.dispose()


def test_an_attack_pattern_named_only_by_stix_id_resolves_against_the_release(
    loaded_settings: Settings,
) -> None:
    """A bundle without its attack-patterns: the STIX ids are looked up in 18.1 (expected ids
    read from the raw bundle), a revoked one follows its revoked-by chain as an ATT&CK id would."""
    with gzip.open(attack_file("enterprise-attack-18.1.json.gz")) as f:
        raw = [o for o in json.loads(f.read())["objects"] if o["type"] == "attack-pattern"]
    ids = {o["id"]: _mitre_id(o) for o in raw}
    revoked = next(o["id"] for o in raw if o.get("revoked") and ids[o["id"]])
    doc = opencti_bundle()
    doc["objects"] = [o for o in doc["objects"] if o["type"] != "attack-pattern"]
    doc["objects"].append(_rel("indicates", LONE_IND, revoked, 9))
    engine = make_engine(loaded_settings.database_url)
    data = json.dumps(doc).encode()
    result = catalog_service.import_catalog(
        engine,
        loaded_settings,
        source=source_from_bytes("opencti.json", data, LIMITS),
        name="bare",
        domain="enterprise",
        version="18.1",
    )
    assert result.catalog.report.outcomes.unknown == 1  # AP_ABSENT, reported, not dropped
    with Session(engine) as s:
        rules = {r.rule_id: r for r in catalog_service.list_rules(s, catalogs=["bare"]).items}
    assert [(m.written, m.technique) for m in rules[SIGMA_IND].mappings] == [
        (AP_1059, ids[AP_1059])
    ]
    stix = [(m.written, m.technique, m.outcome) for m in rules[STIX_IND].mappings]
    assert stix == [(AP_1003, ids[AP_1003], "ok"), (AP_ABSENT, None, "unknown")]
    (lone,) = rules[LONE_IND].mappings
    assert (lone.written, lone.outcome) == (revoked, "remapped")
    assert lone.technique != ids[revoked] and lone.note.startswith(f"revoked: {ids[revoked]} → ")
    engine.dispose()


def _mitre_id(obj: dict[str, Any]) -> str | None:
    return next(
        (
            r["external_id"]
            for r in obj.get("external_references", [])
            if r.get("source_name") == "mitre-attack"
        ),
        None,
    )


FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "catalogs"


@pytest.mark.parametrize(
    ("importer", "folder", "field", "language"),
    [
        ("app.catalog.formats.elastic:ElasticImporter", "elastic", "query", "language"),
        ("app.catalog.formats.splunk:SplunkImporter", "splunk", "search", None),
    ],
)
def test_vendor_bodies_become_patterns_in_their_language(
    importer: str, folder: str, field: str, language: str | None
) -> None:
    """Each rule's body is its query as the file writes it (read here with tomllib / yaml), and
    the export names its language as STIX's pattern_type."""
    imp = registry._builtin(importer)
    parsed = imp.parse(open_source(FIXTURES / folder, LIMITS), LIMITS)
    assert parsed.rules
    for rule in parsed.rules:
        text = (FIXTURES / folder / str(rule.path)).read_text()
        doc = tomllib.loads(text)["rule"] if folder == "elastic" else yaml.safe_load(text)
        assert rule.body == doc.get(field)
        facts = _facts(rule)
        expected = (
            "x-kbmap-reference"
            if rule.body is None
            else {"eql": "eql", "esql": "esql", "lucene": "lucene"}.get(doc.get(language), "kuery")
            if language
            else "spl"
        )
        assert pattern_type(parsed.format_id, facts) == expected


def _facts(rule: ParsedRule) -> RuleFacts:
    return RuleFacts(
        rule.rule_id, rule.name, rule.title, rule.description, rule.package, rule.severity,
        rule.status, rule.enabled, rule.path, rule.platforms, rule.references, rule.log_sources,
        rule.raw_tags, rule.tactics, rule.extra, rule.body, [],
    )  # fmt: skip


def test_the_export_serializer_writes_what_stix2_serialize_writes() -> None:
    """`stix_bundle._serialize` (orjson) against stix2's own `serialize()` on objects with
    defaulted properties (revoked), sub-objects, custom properties and timestamps."""
    import datetime as dt

    from stix2.v21 import Bundle, Indicator

    from app.catalog.stix_bundle import _serialize

    when = dt.datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=dt.UTC)
    ind = Indicator(
        id=SIGMA_IND,
        created=when,
        modified=when,
        valid_from=when,
        name="n",
        pattern="p",
        pattern_type="sigma",
        kill_chain_phases=[{"kill_chain_name": "mitre-attack", "phase_name": "execution"}],
        external_references=[{"source_name": "reference", "url": "https://example.org/a"}],
        allow_custom=True,
        x_kbmap_extra={"a": [1, {"b": None}], "é": "ü"},
    )
    bundle = Bundle(objects=[ind], allow_custom=True)
    assert json.loads(_serialize(bundle)) == json.loads(bundle.serialize())
