"""Object pages (groups, software, campaigns, mitigations, data sources and components,
detection strategies, analytics) against the raw STIX bundles and the coverage API."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests import rawdata as rd
from tests.environment.conftest import API, client_with_sample
from tests.web.dom import Node, parse

E17, E18 = "enterprise-attack-17.1.json.gz", "enterprise-attack-18.1.json.gz"
MOBILE, ICS = "mobile-attack-18.1.json.gz", "ics-attack-18.1.json.gz"
FOLDERS = (
    "groups",
    "software",
    "campaigns",
    "mitigations",
    "data-sources",
    "data-components",
    "detection-strategies",
    "analytics",
)
_CITE = re.compile(r"\(Citation:\s*([^)]*)\)")


@pytest.fixture(scope="module")
def client(
    catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """One app for the module, on a copy of the database with every catalog (pages only read)."""
    db = tmp_path_factory.mktemp("objects") / "kbmap.sqlite"
    shutil.copy(catalog_sqlite_file, db)
    settings = Settings(database_url=f"sqlite:///{db}", environment="test")
    with TestClient(create_app(settings)) as c:
        yield c


def page(client: TestClient, url: str, status: int = 200) -> Node:
    r = client.get(url)
    assert r.status_code == status, (url, r.text[:800])
    assert r.headers["content-type"].startswith("text/html")
    return parse(r.text)


def table_ids(doc: Node, section: str) -> list[str]:
    return [
        tr.attrs["data-technique"]
        for tr in doc.by_id(section).select("tr")
        if "data-technique" in tr.attrs
    ]


def live_far(
    name: str, rtype: str, sid: str, direction: str, stix_type: str
) -> dict[str, dict[str, Any]]:
    """ATT&CK id → (far object, relationship) of live relationships, as the pages read them:
    revoked relationships and revoked or deprecated far ends left out."""
    objs = rd.by_stix_id(name)
    out = {}
    for r in rd.relationships(name, rtype):
        near, far = (
            (r["source_ref"], r["target_ref"])
            if direction == "out"
            else (r["target_ref"], r["source_ref"])
        )
        o = objs.get(far)
        if near == sid and o and o["type"] == stix_type and rd.active(o):
            out[rd.ext_id(o) or o["id"]] = {"obj": o, "rel": r}
    return out


def raw_urls(*owners: dict[str, Any]) -> dict[str, str]:
    """Source name → URL, from the owners' own external_references, the first owner first."""
    out: dict[str, str] = {}
    for o in owners:
        for ref in o.get("external_references", []):
            if ref.get("url") and not ref.get("external_id"):
                out.setdefault(ref["source_name"], ref["url"])
    return out


SERVED = re.compile(
    r"^https://attack\.mitre\.org/(techniques|groups|software|campaigns|mitigations|datasources"
    r"|datacomponents|detectionstrategies|analytics)/"
)


def assert_links_stay_inside(doc: Node) -> None:
    """Every ATT&CK object links inside kbmap except the one "on attack.mitre.org"; what else
    leaves kbmap is a cited source or a link ATT&CK's own text makes (a tactic, a vendor page)."""
    sources = {id(a) for a in doc.by_id("sources").select("a")} if _has(doc, "sources") else set()
    outside = [
        a
        for a in doc.select("a")
        if urlsplit(a.attrs.get("href", "")).netloc and id(a) not in sources
    ]
    site = [a.attrs["href"] for a in outside if "site" in a.classes]
    assert len(site) <= 1 and all(SERVED.match(u) for u in site), site  # none without an id
    others = [a.attrs["href"] for a in outside if "site" not in a.classes]
    assert not [u for u in others if SERVED.match(u)], others
    assert all(a.attrs.get("rel") == "noopener noreferrer" for a in outside)


def _has(doc: Node, html_id: str) -> bool:
    return bool(doc.find_all(lambda n: n.attrs.get("id") == html_id))


# ---- a group ---------------------------------------------------------------------------------


def test_group_page_lists_its_raw_uses_with_texts_and_linked_citations(client: TestClient) -> None:
    group = rd.by_ext_id(E18, "intrusion-set", "G0016")
    uses = live_far(E18, "uses", group["id"], "out", "attack-pattern")
    doc = page(client, "/groups/G0016?version=18.1")
    assert doc.by_id("object").text.startswith("G0016 : APT29")
    assert table_ids(doc, "techniques") == sorted(uses)
    assert "Cozy Bear" in doc.select("dd", "aliases")[0].text
    rows = {
        tr.attrs["data-technique"]: tr
        for tr in doc.by_id("techniques").select("tr")
        if "data-technique" in tr.attrs
    }
    for tid, u in uses.items():  # the technique-specific text, citation markers made numbers
        text = _CITE.sub("", u["rel"].get("description", "")).split("\n")[0].strip()[:30]
        cell = rows[tid].select("td", "text")[0].text
        assert (text.split("[")[0].split("(")[0][:15] in cell) if text else True, (tid, text, cell)
    cited = {li.text: li for li in doc.by_id("sources").select("li")}
    expected = raw_urls(group, *(u["rel"] for u in uses.values()))
    assert cited and set(cited) <= set(expected) | set(_all_cited_names(group, uses))
    linked = 0
    for name, li in cited.items():
        if name in expected:
            assert li.select("a")[0].attrs["href"] == expected[name], name
            linked += 1
    assert linked >= len(cited) * 0.9  # the few without a URL in ATT&CK stay plain
    assert_links_stay_inside(doc)
    assert doc.select("a", "site")[0].attrs["href"] == "https://attack.mitre.org/groups/G0016/"


def _all_cited_names(group: dict[str, Any], uses: dict[str, dict[str, Any]]) -> set[str]:
    texts = [group.get("description", "")] + [
        u["rel"].get("description", "") for u in uses.values()
    ]
    return {m.strip() for t in texts for m in _CITE.findall(t)}


def test_group_gaps_match_the_gap_api(client: TestClient) -> None:
    api = client.get("/api/v1/gaps?groups=G0016&version=18.1&limit=25").json()
    doc = page(client, "/groups/G0016?version=18.1")
    listed = [li.attrs["data-technique"] for li in doc.by_id("gaps").select("li")]
    assert listed == [g["id"] for g in api["items"]][:25]
    assert doc.by_id("gaps").select("small")[0].text == str(api["total"])
    layer = next(a.attrs["href"] for a in doc.by_id("gaps").select("a", "button"))
    r = client.get(layer)
    assert r.status_code == 200 and "G0016" in r.text


def test_group_page_in_a_catalog_colours_like_the_coverage_api(client: TestClient) -> None:
    api = client.get("/api/v1/coverage/techniques?version=18.1&catalog=sigma&limit=2000").json()
    covered = {t["id"] for t in api["items"] if t["covered"]}
    doc = page(client, "/groups/G0016?version=18.1&catalog=sigma")
    for tr in doc.by_id("techniques").select("tr"):
        if "data-technique" in tr.attrs:
            assert ("covered" in tr.classes) == (tr.attrs["data-technique"] in covered), tr.attrs
    assert "sigma" in doc.by_id("gaps").select("a")[-1].attrs["href"]


# ---- software and campaign --------------------------------------------------------------------


def test_software_page_lists_uses_and_the_groups_using_it(client: TestClient) -> None:
    sw = (
        rd.by_ext_id(E18, "tool", "S0154")
        if _exists(E18, "tool", "S0154")
        else rd.by_ext_id(E18, "malware", "S0154")
    )
    doc = page(client, "/software/S0154")
    assert table_ids(doc, "techniques") == sorted(
        live_far(E18, "uses", sw["id"], "out", "attack-pattern")
    )
    groups = sorted(live_far(E18, "uses", sw["id"], "in", "intrusion-set"))
    section = next(
        s for s in doc.select("section", "related") if s.select("h2")[0].text.startswith("Groups")
    )
    assert [a.text for a in section.select("a", "attack-id")] == groups
    assert_links_stay_inside(doc)


def _exists(name: str, stix_type: str, attack_id: str) -> bool:
    return any(o["type"] == stix_type and rd.ext_id(o) == attack_id for o in rd.objects(name))


def test_campaign_page_lists_uses_and_attributed_groups(client: TestClient) -> None:
    camp = rd.by_ext_id(E18, "campaign", "C0024")
    doc = page(client, "/campaigns/C0024")
    assert table_ids(doc, "techniques") == sorted(
        live_far(E18, "uses", camp["id"], "out", "attack-pattern")
    )
    groups = sorted(live_far(E18, "attributed-to", camp["id"], "out", "intrusion-set"))
    section = next(
        s
        for s in doc.select("section", "related")
        if s.select("h2")[0].text.startswith("Attributed")
    )
    assert [a.text for a in section.select("a", "attack-id")] == groups
    assert_links_stay_inside(doc)


# ---- a mitigation -----------------------------------------------------------------------------


def test_mitigation_page_lists_raw_mitigates_and_the_gaps_it_compensates(
    client: TestClient,
) -> None:
    mit = rd.by_ext_id(E18, "course-of-action", "M1026")
    mitigates = live_far(E18, "mitigates", mit["id"], "out", "attack-pattern")
    doc = page(client, "/mitigations/M1026?version=18.1&catalog=sigma")
    assert table_ids(doc, "techniques") == sorted(mitigates)
    api = client.get("/api/v1/coverage/techniques?version=18.1&catalog=sigma&limit=2000").json()
    uncovered = sorted(t["id"] for t in api["items"] if not t["covered"] and t["id"] in mitigates)
    assert [a.text for a in doc.by_id("compensates").select("a", "attack-id")] == uncovered
    assert uncovered  # sigma leaves some of them undetected: the section is not vacuous
    assert_links_stay_inside(doc)


# ---- detection: data components, strategies, analytics ----------------------------------------


def _techniques_of_strategies(name: str, strategy_ids: set[str]) -> set[str]:
    objs = rd.by_stix_id(name)
    return {
        rd.ext_id(objs[r["target_ref"]]) or ""
        for r in rd.relationships(name, "detects")
        if r["source_ref"] in strategy_ids and rd.active(objs[r["target_ref"]])
    }


def test_data_component_page_in_18_follows_analytics_to_techniques(client: TestClient) -> None:
    objs = rd.objects(E18)
    dc = next(
        o for o in objs if o["type"] == "x-mitre-data-component" and o["name"] == "Process Creation"
    )
    analytics = {
        o["id"]
        for o in objs
        if o["type"] == "x-mitre-analytic"
        and rd.active(o)
        and any(
            x.get("x_mitre_data_component_ref") == dc["id"]
            for x in o.get("x_mitre_log_source_references", [])
        )
    }
    strategies = {
        o["id"]
        for o in objs
        if o["type"] == "x-mitre-detection-strategy"
        and rd.active(o)
        and analytics & set(o.get("x_mitre_analytic_refs", []))
    }
    doc = page(client, f"/data-components/{rd.ext_id(dc)}?version=18.1")
    assert set(table_ids(doc, "techniques")) == _techniques_of_strategies(E18, strategies)
    rules = doc.by_id("rules")
    assert rules.select("li") and all(
        a.attrs["href"].startswith("/catalogs/") and "/rules/" in a.attrs["href"]
        for li in rules.select("li")
        for a in li.select("a")[:1]
    )
    assert_links_stay_inside(doc)


def test_data_component_page_in_17_reads_detects_by_stix_id(client: TestClient) -> None:
    objs = rd.objects(E17)
    dc = next(
        o for o in objs if o["type"] == "x-mitre-data-component" and o["name"] == "Process Creation"
    )
    assert rd.ext_id(dc) is None  # before 18 a data component has no ATT&CK id
    detects = live_far(E17, "detects", dc["id"], "out", "attack-pattern")
    doc = page(client, f"/data-components/{dc['id']}?version=17.1")
    assert set(table_ids(doc, "techniques")) == set(detects)
    assert "Process Creation" in doc.by_id("object").text
    assert_links_stay_inside(doc)


def test_data_source_page_in_17_gathers_its_components(client: TestClient) -> None:
    ds = rd.by_ext_id(E17, "x-mitre-data-source", "DS0009")
    comps = {
        o["id"]: o
        for o in rd.objects(E17)
        if o["type"] == "x-mitre-data-component"
        and o.get("x_mitre_data_source_ref") == ds["id"]
        and rd.active(o)
    }
    detected = {t for c in comps for t in live_far(E17, "detects", c, "out", "attack-pattern")}
    doc = page(client, "/data-sources/DS0009?version=17.1")
    assert set(table_ids(doc, "techniques")) == detected
    listed = next(
        s for s in doc.select("section", "related") if s.select("h2")[0].text.startswith("Data")
    )
    assert sorted(li.text for li in listed.select("li")) == sorted(
        c["name"] for c in comps.values()
    )
    assert_links_stay_inside(doc)


def test_detection_strategy_and_its_analytic(client: TestClient) -> None:
    det = rd.by_ext_id(E18, "x-mitre-detection-strategy", "DET0185")
    objs = rd.by_stix_id(E18)
    doc = page(client, "/detection-strategies/DET0185")
    assert set(table_ids(doc, "techniques")) == _techniques_of_strategies(E18, {det["id"]})
    analytic_ids = sorted(
        rd.ext_id(objs[a]) or "" for a in det["x_mitre_analytic_refs"] if rd.active(objs[a])
    )
    listed = [
        a.text for a in doc.by_id("analytics").select("a", "attack-id") if a.text.startswith("AN")
    ]
    assert sorted(set(listed)) == analytic_ids
    assert_links_stay_inside(doc)
    an = page(client, f"/analytics/{analytic_ids[0]}")
    strategies = next(
        s for s in an.select("section", "related") if s.select("h2")[0].text.startswith("Detection")
    )
    assert [a.text for a in strategies.select("a", "attack-id")] == ["DET0185"]
    assert set(table_ids(an, "techniques")) <= _techniques_of_strategies(E18, {det["id"]})
    assert table_ids(an, "techniques")
    assert_links_stay_inside(an)


# ---- errors, other domains, the technique page's links ----------------------------------------


def test_unknown_object_is_an_html_404_naming_the_release(client: TestClient) -> None:
    doc = page(client, "/groups/G9999?version=18.1", 404)
    message = doc.by_id("error-message").text
    assert "G9999" in message and "enterprise 18.1" in message
    page(client, "/mitigations/not-an-id", 404)
    page(client, "/analytics/AN0001?version=17.1", 404)  # no analytics before 18


@pytest.mark.parametrize("bundle,domain", [(MOBILE, "mobile"), (ICS, "ics")])
def test_every_kind_renders_in_mobile_and_ics(client: TestClient, bundle: str, domain: str) -> None:
    kinds = {
        "intrusion-set": "groups",
        "malware": "software",
        "campaign": "campaigns",
        "course-of-action": "mitigations",
        "x-mitre-data-component": "data-components",
        "x-mitre-detection-strategy": "detection-strategies",
        "x-mitre-analytic": "analytics",
    }
    seen = set()
    for o in rd.objects(bundle):
        folder = kinds.get(o["type"])
        if folder and folder not in seen and rd.active(o):
            seen.add(folder)
            doc = page(client, f"/{folder}/{rd.ext_id(o) or o['id']}?domain={domain}")
            assert o["name"] in doc.by_id("object").text
            assert_links_stay_inside(doc)
    assert len(seen) >= 5


@pytest.mark.parametrize(
    "url",
    [
        "/techniques/T1550.001?version=18.1",
        "/techniques/T1550.001?version=17.1",
        "/techniques/T1059.001?version=18.1",
        "/techniques/T1059.001?version=17.1",
    ],
)
def test_every_object_the_technique_page_links_resolves(client: TestClient, url: str) -> None:
    doc = page(client, url)
    targets = {
        a.attrs["href"]
        for a in doc.select("a")
        if urlsplit(a.attrs.get("href", "")).path.split("/")[1:2][0:1]
        and urlsplit(a.attrs["href"]).path.split("/")[1] in FOLDERS
    }
    assert targets
    for href in sorted(targets):
        page(client, href)
    cited = doc.by_id("sources").select("a")
    assert cited and all(a.attrs["href"].startswith("http") for a in cited)


@pytest.mark.parametrize("bundle,domain", [(MOBILE, "mobile"), (ICS, "ics")])
def test_technique_page_links_resolve_in_mobile_and_ics(
    client: TestClient, bundle: str, domain: str
) -> None:
    objs = rd.objects(bundle)
    used = {r["target_ref"] for r in rd.relationships(bundle, "uses")}
    tech = next(
        o for o in objs if o["type"] == "attack-pattern" and rd.active(o) and o["id"] in used
    )
    doc = page(client, f"/techniques/{rd.ext_id(tech)}?domain={domain}")
    targets = {
        a.attrs["href"]
        for a in doc.select("a")
        if urlsplit(a.attrs.get("href", "")).path.split("/")[1:2]
        and urlsplit(a.attrs["href"]).path.split("/")[1] in FOLDERS
    }
    assert targets
    for href in sorted(targets):
        page(client, href)


# ---- in an environment ------------------------------------------------------------------------

ENV = "Object-pages-sample"


@pytest.fixture(scope="module")
def env_client(
    catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The app on a copy of the catalog database with the DeTT&CT endpoints sample imported."""
    yield from client_with_sample(catalog_sqlite_file, tmp_path_factory.mktemp("objects-env"), ENV)


def test_data_component_page_names_the_systems_that_collect_it(env_client: TestClient) -> None:
    env = env_client.get(f"{API}/environments/{ENV}").json()
    systems: dict[str, list[str]] = {}
    for s in env["systems"]:
        for ls in s["log_sources"]:
            for dc in ls["data_components"] if ls["counted"] else ():
                systems.setdefault(dc, [])
                if s["name"] not in systems[dc]:
                    systems[dc].append(s["name"])
    assert systems
    name = "Process Creation" if "Process Creation" in systems else sorted(systems)[0]
    dc = next(
        o for o in rd.objects(E18) if o["type"] == "x-mitre-data-component" and o["name"] == name
    )
    v = env["attack_version"]
    doc = page(env_client, f"/data-components/{rd.ext_id(dc)}?version={v}&environment={ENV}")
    row = next(tr for tr in doc.by_id("collection").select("tr") if tr.select("td"))
    assert row.select("td")[0].text == ENV
    shown = row.select("td")[1].text.split(": on ", 1)[1].split(", ")
    assert sorted(shown) == sorted(systems[name])
    api = env_client.get(
        f"{API}/coverage/techniques?version={v}&environment={ENV}&limit=1000"
    ).json()
    state = {t["id"]: t["state"] for t in api["items"]}
    for tr in doc.by_id("techniques").select("tr"):
        if "data-technique" in tr.attrs:
            assert f"state-{state[tr.attrs['data-technique']]}" in tr.classes
