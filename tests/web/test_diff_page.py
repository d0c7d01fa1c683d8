"""The release diff page, /diff: its lists and counts against the raw enterprise bundles
(17.1 → 18.1, and 16.1 → 17.1, which revokes techniques), the catalog impact of sigma-attack18
against the raw rule mappings, its links, and its errors (missing or unknown releases list what
is loaded)."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from fastapi.testclient import TestClient

from app.attack.ingest import ingest_sources
from app.core.config import Limits, Settings
from app.core.db import make_engine
from app.main import create_app
from tests import rawdata
from tests.conftest import CATALOG_DIR, attack_file
from tests.web.dom import Node, parse

OLD, NEW = "17.1", "18.1"
E = "enterprise-attack-{}.json.gz"
DIFF = f"/diff?from={OLD}&to={NEW}"


@pytest.fixture(scope="module")
def client(
    catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("diff-page") / "kbmap.sqlite"
    shutil.copy(catalog_sqlite_file, db)
    engine = make_engine(f"sqlite:///{db}")
    ingest_sources(engine, [attack_file(E.format("16.1"))], limits=Limits())  # it revokes some
    engine.dispose()
    with TestClient(create_app(Settings(database_url=f"sqlite:///{db}", environment="test"))) as c:
        yield c


_pages: dict[str, Node] = {}


def diff_page(client: TestClient, old: str, new: str) -> Node:
    url = f"/diff?from={old}&to={new}"
    if url not in _pages:
        r = client.get(url)
        assert r.status_code == 200, r.text[:500]
        assert r.headers["content-type"].startswith("text/html")
        _pages[url] = parse(r.text)
    return _pages[url]


@pytest.fixture(scope="module")
def doc(client: TestClient) -> Node:
    return diff_page(client, OLD, NEW)


# ---- independent readings of the raw bundles -----------------------------------------------


def _status(o: dict[str, Any]) -> str:
    if o.get("revoked"):
        return "revoked"
    return "deprecated" if o.get("x_mitre_deprecated") else "active"


@lru_cache(maxsize=4)
def techniques(version: str) -> dict[str, dict[str, Any]]:
    return {
        rawdata.ext_id(o) or "": o
        for o in rawdata.objects(E.format(version))
        if o["type"] == "attack-pattern"
    }


@lru_cache(maxsize=4)
def statuses(version: str) -> dict[str, str]:
    return {t: _status(o) for t, o in techniques(version).items()}


@lru_cache(maxsize=4)
def revoked_by(version: str) -> dict[str, str]:
    """Technique id → the technique id that revokes it (the bundle's revoked-by relationships)."""
    ids = {o["id"]: t for t, o in techniques(version).items()}
    return {
        ids[r["source_ref"]]: ids[r["target_ref"]]
        for r in rawdata.objects(E.format(version))
        if r["type"] == "relationship"
        and r["relationship_type"] == "revoked-by"
        and r["source_ref"] in ids
        and r["target_ref"] in ids
    }


def replacement(tid: str, new: str = NEW) -> str | None:
    """End of the revoked-by chain in the new release, when that end is active."""
    chain = revoked_by(new)
    seen = {tid}
    while tid in chain and chain[tid] not in seen:
        tid = chain[tid]
        seen.add(tid)
    return tid if statuses(new).get(tid) == "active" and tid not in chain else None


def tactic_set(o: dict[str, Any]) -> set[str]:
    return {
        p["phase_name"]
        for p in o.get("kill_chain_phases", [])
        if p["kill_chain_name"].startswith("mitre")
    }


def expected_lists(old: str, new: str) -> dict[str, list[str]]:
    a, b = statuses(old), statuses(new)
    ta, tb = techniques(old), techniques(new)
    both = sorted(t for t in b if b[t] == "active" and a.get(t) == "active")
    new = [t for t in b if b[t] == "active" and a.get(t) != "active"]
    again = {t for t in new if t in ta and ta[t]["id"] == tb[t]["id"]}
    return {
        "techniques_added": sorted(t for t in new if t not in again),
        "techniques_reinstated": sorted(again),
        "techniques_revoked": sorted(t for t in b if b[t] == "revoked" and a.get(t) != "revoked"),
        "techniques_deprecated": sorted(
            t for t in b if b[t] == "deprecated" and a.get(t) != "deprecated"
        ),
        "techniques_renamed": [t for t in both if ta[t]["name"] != tb[t]["name"]],
        "techniques_tactics_changed": [t for t in both if tactic_set(ta[t]) != tactic_set(tb[t])],
    }


def raw_stale(catalog: str) -> set[tuple[str | None, str, str]]:
    """(rule id, title, technique id) of the catalog's written mappings that 18.1 revoked,
    deprecated or removed (known in 17.1, gone in 18.1): from the catalog's normalized records,
    read apart from the importer (which names a multi-document rule by a later document's id,
    where the records have none)."""
    with gzip.open(CATALOG_DIR / f"{catalog}.normalized.json.gz", "rt", encoding="utf-8") as fh:
        records = json.load(fh)
    a, b = statuses(OLD), statuses(NEW)
    return {
        (rec["id"], rec["title"], t.upper())
        for rec in records
        for t in rec.get("techniques") or []
        if b.get(t.upper()) in ("revoked", "deprecated") or (t.upper() not in b and t.upper() in a)
    }


# ---- the page ------------------------------------------------------------------------------


def section_ids(doc: Node, key: str) -> list[str]:
    """The first ATT&CK id of each row of one list (the changed object itself)."""
    found = doc.find_all(lambda n: n.attrs.get("data-kind") == key)
    assert len(found) == 1, key
    if found[0].tag == "p":  # "none"
        return []
    return [li.select("a", "attack-id")[0].text for li in found[0].select("li")]


@pytest.mark.parametrize(("old", "new"), [("16.1", "17.1"), (OLD, NEW)])
def test_counts_equal_the_raw_bundles(client: TestClient, old: str, new: str) -> None:
    doc = diff_page(client, old, new)
    want = expected_lists(old, new)
    counts = {
        tr.attrs["data-count"]: int(tr.select("td", "num")[0].text)
        for tr in doc.by_id("counts").select("tr")
        if "data-count" in tr.attrs
    }
    for key, ids in want.items():
        assert counts[key] == len(ids), key
        assert section_ids(doc, key) == ids, key
    assert want["techniques_added"] and want["techniques_renamed"]  # the test can fail


def test_revoked_rows_link_old_release_and_name_the_raw_replacement(client: TestClient) -> None:
    old, new = "16.1", "17.1"
    rows = diff_page(client, old, new).by_id("techniques_revoked").select("li")
    assert rows
    for li in rows:
        links = li.select("a", "attack-id")
        tid = links[0].text
        assert links[0].attrs["href"] == f"/techniques/{tid}?version={old}&domain=enterprise"
        want = replacement(tid, new)
        if want:
            assert links[1].text == want
            assert links[1].attrs["href"] == f"/techniques/{want}?version={new}&domain=enterprise"
            assert techniques(new)[want]["name"] in li.text
        else:
            assert len(links) == 1 and "no active replacement" in li.text


def test_added_and_renamed_rows_link_the_new_release(doc: Node) -> None:
    for key in ("techniques_added", "techniques_renamed"):
        for li in doc.by_id(key).select("li"):
            a = li.select("a", "attack-id")[0]
            assert a.attrs["href"] == f"/techniques/{a.text}?version={NEW}&domain=enterprise"
            assert techniques(NEW)[a.text]["name"] in li.text
    for li in doc.by_id("techniques_renamed").select("li"):
        tid = li.select("a", "attack-id")[0].text
        assert f"was “{techniques(OLD)[tid]['name']}”" in li.text


def test_sigma_attack18_impact_equals_the_raw_mappings(doc: Node) -> None:
    section = doc.by_id("impact-sigma-attack18")
    rows = section.select("tr")[1:]
    got = {(tr.attrs["data-rule"], tr.attrs["data-stale"]) for tr in rows}
    raw = raw_stale("sigma-attack18")
    assert len(got) == len(raw) and raw  # 17.1 → 18.1 leaves some rules on retired ids
    for rid, title, stale in raw:
        if rid is not None:
            assert (rid, stale) in got
        else:  # named by title: the row's text is "<rule id> <title>"
            assert [tr for tr in rows if tr.attrs["data-stale"] == stale and title in tr.text]
    assert section.attrs["data-stale-rules"] == str(len({r for r, _ in got}))
    for tr in rows:
        rule = tr.select("a", "rule-link")[0]
        rid, stale = tr.attrs["data-rule"], tr.attrs["data-stale"]
        assert rule.attrs["href"] == f"/catalogs/sigma-attack18/rules/{quote(rid, safe='')}"
        want = replacement(stale) if statuses(NEW).get(stale) == "revoked" else None
        ids = [a.text for a in tr.select("a", "attack-id")]
        assert ids == ([stale, want] if want else [stale])


def test_every_catalog_of_the_domain_has_an_impact_and_one_can_be_chosen(
    client: TestClient, doc: Node
) -> None:
    shown = {n.attrs["data-catalog"] for n in doc.select("section", "impact")}
    assert {"sigma-attack18", "sigma", "open-xp-rules", "maxpatrol-siem"} <= shown
    one = parse(client.get(f"{DIFF}&catalog=open-xp-rules").text)
    assert [n.attrs["data-catalog"] for n in one.select("section", "impact")] == ["open-xp-rules"]
    bad = client.get(f"{DIFF}&catalog=no-such-catalog")
    assert bad.status_code == 404 and "no-such-catalog" in bad.text


def test_every_link_stays_inside_kbmap(doc: Node) -> None:
    hrefs = [a.attrs["href"] for a in doc.select("a") if "href" in a.attrs]
    assert hrefs
    for h in hrefs:
        parts = urlsplit(h)
        assert not parts.scheme and not parts.netloc, h


def test_links_from_the_page_answer(client: TestClient, doc: Node) -> None:
    """One link of each kind the page makes: technique pages in both releases, the API's JSON."""
    old = doc.by_id("impact-sigma-attack18").select("a", "attack-id")[0].attrs["href"]
    added = doc.by_id("techniques_added").select("a", "attack-id")[0].attrs["href"]
    rule = doc.by_id("impact-sigma-attack18").select("a", "rule-link")[0].attrs["href"]
    api = next(a.attrs["href"] for a in doc.select("a", "button") if "/api/" in a.attrs["href"])
    assert "version=17.1" in old and "version=18.1" in added
    if client.get(rule).status_code != 404:  # the rule page is another part's
        assert client.get(rule).status_code == 200
    for href in (old, added, api):
        assert client.get(href).status_code == 200, href


def test_missing_releases_give_the_form_and_what_is_loaded(client: TestClient) -> None:
    for url in ("/diff", f"/diff?from={OLD}", f"/diff?to={NEW}"):
        r = client.get(url)
        assert r.status_code == 400, url
        page = parse(r.text)
        problem = page.by_id("problem").text
        for version in ("enterprise 17.1", "enterprise 18.1", "mobile 18.1", "ics 18.1"):
            assert version in problem
        form = page.select("form", "diff-form")[0]
        names = {n.attrs.get("name") for n in form.walk()}
        assert {"from", "to", "domain", "catalog"} <= names


def test_unknown_release_or_domain_is_an_html_4xx_listing_the_known_ones(
    client: TestClient,
) -> None:
    r = client.get(f"/diff?from=9.9&to={NEW}")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "9.9" in r.text and "enterprise 17.1" in r.text and "enterprise 18.1" in r.text
    r = client.get(f"/diff?from={OLD}&to={NEW}&domain=nope")
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "nope" in r.text and "enterprise, mobile, ics" in r.text


def test_a_kept_page_follows_the_catalogs(catalog_client: TestClient) -> None:
    """The rendered diff is kept under the releases' and catalogs' state: deleting a catalog
    takes its impact off the page at once."""

    def shown() -> set[str]:
        doc = parse(catalog_client.get(DIFF).text)
        return {n.attrs["data-catalog"] for n in doc.select("section", "impact")}

    assert "open-xp-rules" in shown()
    assert shown() == shown()  # kept, and the same
    assert catalog_client.delete("/api/v1/catalogs/open-xp-rules").status_code == 204
    after = shown()
    assert "open-xp-rules" not in after and "sigma-attack18" in after
