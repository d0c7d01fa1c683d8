"""The pure side of `kbmap refresh --taxii`: picking collections, reading envelopes, assembling
the release a collection's x-mitre-collection object lists. Expected objects come from the shared
ICS release files read here with gzip + json."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.attack.stix import parse_bundle
from app.core.errors import InvalidInput, NotFound
from app.refresh import taxii_release
from app.refresh.taxii_release import Found, Offer
from tests.refresh.test_taxii import ENTERPRISE, ICS, expected_counts, release_objects

FOUND = [
    Found(ENTERPRISE, "Enterprise ATT&CK", "http://x/api/collections/e/"),
    Found(ICS, "ICS ATT&CK", "http://x/api/collections/i/"),
    Found("c-other", "Indicators", "http://x/api/collections/o/"),
]


def test_pick_collections_by_id_domain_or_all() -> None:
    pick = taxii_release.pick_collections
    assert pick(FOUND, collection=ICS, domains=None) == [FOUND[1]]
    assert pick(FOUND, collection=None, domains=["ICS"]) == [FOUND[1]]
    assert pick(FOUND, collection=None, domains=None) == FOUND[:2]  # the ATT&CK ones
    with pytest.raises(NotFound) as info:
        pick(FOUND, collection="nope", domains=None)
    assert str(info.value) == (
        f"the server has no collection 'nope'; it has: {ENTERPRISE} (Enterprise ATT&CK), "
        f"{ICS} (ICS ATT&CK), c-other (Indicators)"
    )
    with pytest.raises(NotFound, match=r"no mobile ATT&CK collection; it has: .*ICS ATT&CK"):
        pick(FOUND, collection=None, domains=["mobile"])
    with pytest.raises(InvalidInput, match="unknown ATT&CK domain 'pre'"):
        pick(FOUND, collection=None, domains=["pre"])
    with pytest.raises(NotFound, match=r"no ATT&CK collection; it has: c-other \(Indicators\)"):
        pick(FOUND[2:], collection=None, domains=None)


def test_read_envelope_refuses_what_is_not_one() -> None:
    read = taxii_release.read_envelope
    assert read({}, "p") == ([], False, None)
    obj = {"type": "identity", "id": "identity--1"}
    assert read({"objects": [obj], "more": True, "next": 2}, "p") == ([obj], True, "2")
    bad: list[tuple[Any, str]] = [
        ([], "not a TAXII envelope"),
        ({"objects": {}}, "'objects' list"),
        ({"objects": [], "more": "yes"}, "'more' flag"),
        ({"objects": [obj, 3]}, r"objects\[1\] is not a STIX object"),
        ({"objects": [{"type": "x"}]}, r"objects\[0\] is not a STIX object"),
        ({"objects": [{"type": "", "id": "a"}]}, r"objects\[0\]"),
        ({"objects": [], "next": ["a"]}, "'next' is not a string"),
    ]
    for doc, message in bad:
        with pytest.raises(InvalidInput, match=message):
            read(doc, "page 3")


def offer(version: str, found: Found = FOUND[1]) -> Offer:
    return Offer(found, "ics", version, None)


def test_assemble_takes_exactly_the_listed_versions() -> None:
    """Both releases' objects (every version, as a server keeping history sends them) → the
    newest release's bundle, the same objects at the same versions as MITRE's 18.1 file."""
    both = release_objects("17.1") + release_objects("18.1")
    raw = taxii_release.assemble(both, offer("18.1"))
    bundle = json.loads(raw)
    want = {(o["id"], o.get("modified")) for o in release_objects("18.1")}
    assert {(o["id"], o.get("modified")) for o in bundle["objects"]} == want
    assert len(bundle["objects"]) == len(release_objects("18.1"))
    parsed = parse_bundle(raw, source="taxii", max_bytes=10**9)
    assert (parsed.domain, parsed.version) == ("ics", "18.1")
    assert (len(parsed.objects), len(parsed.relationships)) == expected_counts("18.1")


def test_assemble_refuses_a_partial_release_and_a_moved_collection() -> None:
    objs = release_objects("17.1")
    collection = next(o for o in objs if o["type"] == "x-mitre-collection")
    listed = collection["x_mitre_contents"]
    gone = {listed[0]["object_ref"], listed[1]["object_ref"]}
    with pytest.raises(InvalidInput, match="lists 2 objects the server did not send") as info:
        taxii_release.assemble([o for o in objs if o["id"] not in gone], offer("17.1"))
    assert listed[0]["object_ref"] in str(info.value)
    changed = [
        {**o, "modified": "2020-01-01T00:00:00.000Z"} if o["id"] in gone else o for o in objs
    ]
    with pytest.raises(InvalidInput, match="lists 2 objects"):
        taxii_release.assemble(changed, offer("17.1"))
    with pytest.raises(InvalidInput, match=r"it now holds 17\.1, not 18\.1"):
        taxii_release.assemble(objs, offer("18.1"))
    with pytest.raises(InvalidInput, match="no x-mitre-collection object"):
        taxii_release.assemble(
            [o for o in objs if o["type"] != "x-mitre-collection"], offer("17.1")
        )
    no_list = [{**o, "x_mitre_contents": "all"} if o is collection else o for o in objs]
    with pytest.raises(InvalidInput, match="no x_mitre_contents list"):
        taxii_release.assemble(no_list, offer("17.1"))


def test_offer_names_both_domains_when_they_disagree() -> None:
    obj = next(o for o in release_objects("18.1") if o["type"] == "x-mitre-collection")
    got = taxii_release.offer_of(FOUND[1], obj, None)
    assert (got.domain, got.version, got.modified) == ("ics", "18.1", obj["modified"])
    with pytest.raises(InvalidInput) as info:
        taxii_release.offer_of(FOUND[0], obj, None)
    assert str(info.value).endswith(
        f"collection {ENTERPRISE} (Enterprise ATT&CK) is titled enterprise, but its "
        "x-mitre-collection object is 'ICS ATT&CK' (ics)"
    )
    with pytest.raises(InvalidInput, match=r"\(ICS ATT&CK\) holds ics 18.1, not enterprise"):
        taxii_release.offer_of(FOUND[1], obj, ["enterprise"])
    with pytest.raises(InvalidInput, match=r"not of the form MAJOR\.MINOR"):
        taxii_release.offer_of(FOUND[1], {**obj, "x_mitre_version": "latest"}, None)
    with pytest.raises(InvalidInput, match="cannot tell the ATT&CK domain"):
        taxii_release.offer_of(FOUND[2], {**obj, "name": "Indicators"}, None)


def test_named_domain_reads_the_newest_collection_object() -> None:
    objs = release_objects("17.1")
    assert taxii_release.named_domain(objs) == "ics"
    assert (
        taxii_release.named_domain([o for o in objs if o["type"] != "x-mitre-collection"]) is None
    )
    renamed = [
        {**o, "name": "Threat feed"} if o["type"] == "x-mitre-collection" else o for o in objs
    ]
    assert taxii_release.named_domain(renamed) is None
    generic = Found("c", "Industrial", "http://x/c/", named="ics")
    assert generic.domain == "ics"
    assert taxii_release.pick_collections([generic], collection=None, domains=["ics"]) == [generic]
