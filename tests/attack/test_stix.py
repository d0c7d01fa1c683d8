"""The pure STIX reader on the shared releases and on small hand-built bundles."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from app.attack.stix import parse_bundle
from app.core.errors import InvalidInput, TooLarge
from tests import rawdata
from tests.conftest import ATTACK_DIR

MAX = 300 << 20


def _parse(name: str, **kw: object):  # type: ignore[no-untyped-def]
    path = ATTACK_DIR / name
    return parse_bundle(path.read_bytes(), source=str(path), max_bytes=MAX, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "domain", "version", "stix"),
    [
        ("enterprise-attack-18.1.json.gz", "enterprise", "18.1", "2.0"),
        ("enterprise-attack-16.1.json.gz", "enterprise", "16.1", "2.0"),
        ("mobile-attack-17.1.json.gz", "mobile", "17.1", "2.0"),
        ("ics-attack-18.1.json.gz", "ics", "18.1", "2.0"),
        ("stix21/ics-attack-17.1.json.gz", "ics", "17.1", "2.1"),
    ],
)
@pytest.mark.integration  # reads a whole real release or catalog
def test_detects_domain_version_and_stix_version(
    name: str, domain: str, version: str, stix: str
) -> None:
    parsed = _parse(name)
    assert (parsed.domain, parsed.version, parsed.stix_version) == (domain, version, stix)
    raw = rawdata.objects(name)
    assert len(parsed.objects) + len(parsed.relationships) == len(
        [o for o in raw if o["type"] != "x-mitre-collection"]
    )
    techniques = {r[2] for r in parsed.objects if r[1] == "technique" and not r[8] and not r[9]}
    assert techniques == rawdata.active_techniques(name)


def test_stix21_ics_agrees_with_stix20() -> None:
    a, b = _parse("ics-attack-18.1.json.gz"), _parse("stix21/ics-attack-18.1.json.gz")
    assert {r[0]: r[1:10] for r in a.objects} == {r[0]: r[1:10] for r in b.objects}
    assert sorted(a.relationships) == sorted(b.relationships)
    assert sorted(a.technique_tactics) == sorted(b.technique_tactics)


def test_version_comes_from_collection_not_file_name(tmp_path: Path) -> None:
    data = gzip.decompress((ATTACK_DIR / "stix21/ics-attack-18.1.json.gz").read_bytes())
    odd = tmp_path / "ics-attack-17.1.json"  # lying file name
    odd.write_bytes(data)
    assert parse_bundle(odd.read_bytes(), source=str(odd), max_bytes=MAX).version == "18.1"
    with pytest.raises(InvalidInput, match="contradicts"):
        parse_bundle(data, source="x.json", version="17.1", max_bytes=MAX)


def _bundle(objects: list[dict[str, object]]) -> bytes:
    return json.dumps({"type": "bundle", "id": "bundle--1", "objects": objects}).encode()


TECH = {
    "type": "attack-pattern",
    "id": "attack-pattern--1",
    "name": "T",
    "x_mitre_domains": ["enterprise-attack"],
    "external_references": [{"source_name": "mitre-attack", "external_id": "T9999"}],
}


def test_version_needed_when_nothing_says_it() -> None:
    with pytest.raises(InvalidInput, match="pass --version"):
        parse_bundle(_bundle([TECH]), source="mine.json", max_bytes=MAX)
    assert (
        parse_bundle(_bundle([TECH]), source="mine.json", version="1.0", max_bytes=MAX).version
        == "1.0"
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00not json", "not valid JSON"),
        (b'{"type": "indicator"}', "not a STIX bundle"),
        (b'{"type": "bundle", "objects": {}}', "'objects' is not a list"),
        (_bundle([{"type": "attack-pattern"}]), "has no id or type"),
        (_bundle([TECH, TECH]), "duplicate object id"),
        (
            _bundle(
                [
                    TECH,
                    {
                        "type": "relationship",
                        "id": "relationship--1",
                        "relationship_type": "uses",
                        "source_ref": "intrusion-set--x",
                        "target_ref": "attack-pattern--1",
                    },
                ]
            ),
            "points to missing object intrusion-set--x",
        ),
        (_bundle([{**TECH, "x_mitre_domains": ["pre-attack"]}]), "unknown ATT&CK domain"),
        (_bundle([{**TECH, "x_mitre_domains": []}]), "cannot tell the ATT&CK domain"),
    ],
)
def test_bad_bundles_are_refused_with_the_reason(payload: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        parse_bundle(payload, source="bad.json", version="1.0", max_bytes=MAX)
    assert str(info.value).startswith("bad.json")


def test_truncated_gzip_and_oversize_are_refused() -> None:
    data = (ATTACK_DIR / "ics-attack-18.1.json.gz").read_bytes()
    with pytest.raises(InvalidInput, match="truncated"):
        parse_bundle(data[: len(data) // 2], source="cut.json.gz", max_bytes=MAX)
    with pytest.raises(TooLarge):
        parse_bundle(data, source="big.json.gz", max_bytes=1000)


@pytest.mark.integration  # reads a whole real release or catalog
def test_tactics_come_from_kill_chain_phases() -> None:
    parsed = _parse("enterprise-attack-18.1.json.gz")
    raw = rawdata.objects("enterprise-attack-18.1.json.gz")
    expected = Counter(
        p["phase_name"]
        for o in raw
        if o["type"] == "attack-pattern"
        for p in o.get("kill_chain_phases", [])
    )
    assert Counter(t for _, t in parsed.technique_tactics) == expected


def test_keep_receives_the_decoded_bundle() -> None:
    name = "ics-attack-18.1.json.gz"
    kept: list[object] = []
    parsed = _parse(name, keep=kept)
    (doc,) = kept
    assert isinstance(doc, dict) and doc["type"] == "bundle"
    assert len(doc["objects"]) == len(rawdata.objects(name))
    assert len(parsed.objects) + len(parsed.relationships) == sum(
        o["type"] != "x-mitre-collection" for o in doc["objects"]
    )
