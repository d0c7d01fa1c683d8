"""MITRE's collection index and kbmap's release manifest, read without any server or database."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import InvalidInput
from app.refresh.index import parse_index, parse_manifest
from tests.conftest import ATTACK_DIR, ROOT

INDEX = ATTACK_DIR / "stix21" / "index.json"


def _raw_index() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(INDEX.read_text(encoding="utf-8"))
    return data


def _index(*collections: dict[str, Any]) -> bytes:
    return json.dumps({"collections": list(collections)}).encode()


def test_real_index_lists_every_stable_release() -> None:
    raw = _raw_index()
    index = parse_index(INDEX.read_bytes(), source=str(INDEX))
    for coll in raw["collections"]:
        domain = coll["name"].split()[0].lower()
        stable = [v for v in coll["versions"] if "-" not in v["version"]]
        assert {e.version for e in index.releases(domain)} == {v["version"] for v in stable}
        newest = max(stable, key=lambda v: [int(p) for p in v["version"].split(".")])
        got = index.find(domain)
        assert got is not None
        assert (got.version, got.url, got.modified) == (
            newest["version"],
            newest["url"],
            newest["modified"],
        )
    assert len(index.releases("enterprise")) == 38
    assert len(index.releases("ics")) == 24
    betas = [
        f"mobile {v['version']}" for v in raw["collections"][1]["versions"] if "-" in v["version"]
    ]
    assert len(betas) == 3
    assert [i.split(":")[0] for i in index.ignored] == betas
    ics17 = index.find("ics", "17.1")
    assert ics17 is not None and ics17.url.endswith("/ics-attack/ics-attack-17.1.json")
    assert index.find("ics", "7.0") is None


def test_domain_comes_from_the_url_when_the_name_says_nothing() -> None:
    raw = _index(
        {
            "name": "Mirror",
            "versions": [{"version": "18.1", "url": "http://m/ics-attack-18.1.json"}],
        }
    )
    index = parse_index(raw, source="mirror.json")
    assert [(e.domain, e.version, e.modified) for e in index.entries] == [("ics", "18.1", None)]


def test_unknown_collections_are_skipped_not_fatal() -> None:
    raw = _index(
        {"name": "PRE-ATT&CK", "versions": [{"version": "1.0", "url": "http://m/pre-attack.json"}]},
        {"name": "ICS ATT&CK", "versions": [{"version": "18.1", "url": "http://m/x.json"}]},
    )
    index = parse_index(raw, source="i.json")
    assert [(e.domain, e.version) for e in index.entries] == [("ics", "18.1")]
    assert index.ignored == ("PRE-ATT&CK 1.0: not an ATT&CK domain kbmap knows",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"collections": {}}', "no 'collections' list"),
        (b"[]", "no 'collections' list"),
        (_index(), "lists no ATT&CK release"),
        (_index({"name": "ICS ATT&CK", "versions": "18.1"}), "no 'versions' list"),
    ],
)
def test_bad_index_names_the_index(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        parse_index(raw, source="/tmp/broken-index.json")
    assert str(info.value).startswith("/tmp/broken-index.json")


def test_every_bad_entry_is_reported_with_its_field() -> None:
    raw = _index(
        {
            "name": "ICS ATT&CK",
            "versions": [
                {"version": "18.1", "url": "http://m/ics-attack-18.1.json"},
                {"version": "18.0"},
                {"url": "http://m/ics-attack-17.1.json"},
                {"version": "17.1", "url": "http://m/mobile-attack-17.1.json"},
                {"version": "18.1", "url": "http://m/ics-attack-18.1.json"},
            ],
        }
    )
    with pytest.raises(InvalidInput) as info:
        parse_index(raw, source="i.json")
    fields = [i.location.field for i in info.value.issues if i.location]
    assert fields == [
        "collections[0].versions[1].url",
        "collections[0].versions[2].version",
        "collections[0].versions[3].url",
        "collections[0].versions[4].version",
    ]
    assert "'ICS ATT&CK' lists a mobile file" in info.value.issues[2].message
    assert info.value.issues[3].message == "ics 18.1 is listed twice"


def test_shipped_manifest_pins_the_bytes_mitre_serves() -> None:
    manifest_path = ROOT / "kb" / "releases.yaml"
    manifest = parse_manifest(manifest_path.read_bytes(), source=str(manifest_path))
    index = parse_index(INDEX.read_bytes(), source=str(INDEX))
    for version in ("17.1", "18.1"):
        with gzip.open(ATTACK_DIR / "stix21" / f"ics-attack-{version}.json.gz") as fh:
            expected = hashlib.sha256(fh.read()).hexdigest()
        assert manifest[("ics", version)].sha256 == expected
    for (domain, version), entry in manifest.items():
        listed = index.find(domain, version)
        assert listed is not None and entry.url == listed.url
    assert manifest[("enterprise", "18.1")].sha256 is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("releases:\n  - {domain: ics, version: 18.1}\n", "not a quoted 'MAJOR.MINOR' string"),
        ("releases:\n  - {domain: pre, version: '1.0'}\n", "unknown domain 'pre'"),
        ("releases:\n  - {domain: ics, version: '18.1', sha256: ABC}\n", "64 lowercase hex"),
        (
            "releases:\n  - {domain: ics, version: '18.1'}\n  - {domain: ics, version: '18.1'}\n",
            "listed twice",
        ),
        ("pins: []\n", "no 'releases' list"),
    ],
)
def test_bad_manifest_is_refused(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        parse_manifest(text.encode(), source=str(tmp_path / "releases.yaml"))
    assert str(tmp_path / "releases.yaml") in str(info.value)
