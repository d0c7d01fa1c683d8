"""Filters take every form kbmap prints and refuse what they do not know (API and pages).

Expected tactics, platforms and group names come from the raw 18.1 bundle (tests/rawdata.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests import rawdata
from tests.coverage.test_coverage import _group_techniques

E18 = "enterprise-attack-18.1.json.gz"


@pytest.fixture(scope="module")
def client(catalog_sqlite_file: object) -> Iterator[TestClient]:
    s = Settings(database_url=f"sqlite:///{catalog_sqlite_file}", environment="test")
    with TestClient(create_app(s)) as c:
        yield c


def raw_tactics() -> list[dict[str, Any]]:
    return [o for o in rawdata.objects(E18) if o["type"] == "x-mitre-tactic" and rawdata.active(o)]


def raw_platforms() -> set[str]:
    return {
        p
        for o in rawdata.objects(E18)
        if o["type"] == "attack-pattern" and rawdata.active(o)
        for p in o.get("x_mitre_platforms", [])
    }


def raw_in_tactic(shortname: str) -> set[str]:
    return {
        rawdata.ext_id(o) or ""
        for o in rawdata.objects(E18)
        if o["type"] == "attack-pattern"
        and rawdata.active(o)
        and any(p["phase_name"] == shortname for p in o.get("kill_chain_phases", []))
    }


def ids(client: TestClient, url: str, **params: Any) -> set[str]:
    r = client.get(url, params={"version": "18.1", "limit": 1000, **params})
    assert r.status_code == 200, r.text[:300]
    return {x["id"] for x in r.json()["items"]}


def test_tactic_by_shortname_display_name_or_id(client: TestClient) -> None:
    tactics = raw_tactics()
    assert len(tactics) == 14
    for t in tactics:
        expected = raw_in_tactic(t["x_mitre_shortname"])
        for form in (t["x_mitre_shortname"], t["name"], rawdata.ext_id(t), t["name"].upper()):
            assert ids(client, "/api/v1/techniques", tactic=form) == expected, form
    lateral = raw_in_tactic("lateral-movement")
    for form in ("Lateral Movement", "TA0008", "lateral_movement"):
        assert ids(client, "/api/v1/coverage/techniques", tactic=form) == lateral, form


def test_platform_in_any_case(client: TestClient) -> None:
    windows = {
        rawdata.ext_id(o)
        for o in rawdata.objects(E18)
        if o["type"] == "attack-pattern"
        and rawdata.active(o)
        and "Windows" in o.get("x_mitre_platforms", [])
    }
    for form in ("Windows", "windows", "WINDOWS"):
        assert ids(client, "/api/v1/techniques", platform=form) == windows
        assert ids(client, "/api/v1/coverage/techniques", platform=form) == windows
    layer = client.get("/api/v1/layers/coverage", params={"platform": "windows"}).json()
    assert layer["filters"]["platforms"] == ["Windows"]


FILTERED = [
    "/api/v1/techniques",
    "/api/v1/coverage",
    "/api/v1/coverage/techniques",
    "/api/v1/coverage/tactics",
    "/api/v1/coverage/platforms",
    "/api/v1/coverage/data-components",
    "/api/v1/coverage/detection-strategies",
    "/api/v1/coverage/compare?a=sigma&b=sigma-attack18",
    "/api/v1/gaps",
    "/api/v1/layers/coverage",
    "/api/v1/layers/coverage.svg",
    "/api/v1/layers/coverage.xlsx",
    "/api/v1/layers/gaps",
]


@pytest.mark.parametrize("url", FILTERED)
def test_unknown_tactic_or_platform_is_refused_with_the_known_ones(
    client: TestClient, url: str
) -> None:
    for field, bad, known in (
        ("tactic", "nope", [f for t in raw_tactics() for f in (t["name"], rawdata.ext_id(t))]),
        ("tactic", "\x00", [t["x_mitre_shortname"] for t in raw_tactics()]),
        ("platform", "Plan 9", sorted(raw_platforms())),
    ):
        r = client.get(url, params={field: bad})
        assert r.status_code == 422, (url, field, r.text[:300])
        error = r.json()["error"]
        assert error["location"]["field"] == field
        assert repr(bad) in error["message"]
        assert all(k in error["message"] for k in known), error["message"]


def test_pages_take_and_check_the_same_filters(client: TestClient) -> None:
    assert client.get("/matrix", params={"platform": "linux"}).status_code == 200
    for url, params, hint in (
        ("/matrix", {"platform": "Plan 9"}, "Windows"),
        ("/gaps", {"platform": "Plan 9"}, "Linux"),
        ("/gaps", {"groups": "APT290"}, "G0016"),
    ):
        r = client.get(url, params=params)
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
        assert hint in r.text
    listed = [
        re.findall(r'href="/techniques/(T[0-9.]+)', client.get("/gaps", params=p).text)
        for p in ({"groups": "apt29"}, {"groups": "G0016"})
    ]
    assert listed[0] == listed[1] and listed[0]


def _aliases(stix_type: str, attack_id: str) -> list[str]:
    o = rawdata.by_ext_id(E18, stix_type, attack_id)
    return [o["name"], *o.get("aliases", []), *o.get("x_mitre_aliases", [])]


def test_groups_by_id_name_or_alias(client: TestClient) -> None:
    used = _group_techniques("G0016")
    forms = _aliases("intrusion-set", "G0016")
    assert "Cozy Bear" in forms
    for form in ["G0016", "g0016", *forms, "cozy bear"]:
        got = ids(client, "/api/v1/coverage/techniques", groups=form)
        assert got == used, form
    gaps = client.get("/api/v1/gaps", params={"groups": "APT29", "limit": 5}).json()
    assert all(g["groups"] == ["G0016"] for g in gaps["items"])
    campaign = rawdata.by_ext_id(E18, "campaign", "C0024")
    assert ids(client, "/api/v1/coverage/techniques", groups=campaign["name"]) == ids(
        client, "/api/v1/coverage/techniques", groups="C0024"
    )


def test_unknown_or_ambiguous_group_is_an_error(client: TestClient) -> None:
    r = client.get("/api/v1/gaps", params={"groups": "APT290"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["location"]["field"] == "groups"
    assert "unknown group, software or campaign 'APT290'" in error["message"]
    assert "G0016 (APT29)" in error["message"] and "/api/v1/groups" in error["message"]
    sharing = [
        rawdata.ext_id(o) or ""
        for o in rawdata.objects(E18)
        if o["type"] == "intrusion-set" and rawdata.active(o) and "UAC-0056" in o.get("aliases", [])
    ]
    assert len(sharing) == 2
    r = client.get("/api/v1/coverage", params={"groups": "uac-0056"})
    assert r.status_code == 422
    assert all(g in r.json()["error"]["message"] for g in sharing)


def test_unknown_query_parameter_is_refused_on_every_api_route(client: TestClient) -> None:
    r = client.get("/api/v1/techniques", params={"tatic": "x"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["location"]["field"] == "tatic"
    assert "'tatic'" in error["message"] and "tactic" in error["message"].split("takes:")[1]
    schema = client.get("/openapi.json").json()["paths"]
    paths = [p for p, ops in schema.items() if p.startswith("/api/v1") and "get" in ops]
    assert len(paths) > 20
    for path in paths:
        url = path.replace("{kind}", "coverage").replace("{", "").replace("}", "")
        r = client.get(url, params={"zzz_unknown": "1"})
        assert r.status_code == 422, (path, r.status_code, r.text[:200])
        assert r.json()["error"]["location"]["field"] == "zzz_unknown", path


def test_rules_and_catalogs_filters_check_their_values(client: TestClient) -> None:
    def rule_ids(tactic: str) -> list[str]:
        params = {"catalog": "sigma-attack18", "tactic": tactic, "limit": 1000}
        r = client.get("/api/v1/rules", params=params)
        assert r.status_code == 200, r.text[:300]
        return [x["rule_id"] for x in r.json()["items"]]

    lateral = rule_ids("lateral-movement")
    assert lateral and rule_ids("Lateral Movement") == lateral == rule_ids("TA0008")
    bad = client.get("/api/v1/rules", params={"catalog": "sigma-attack18", "tactic": "nope"})
    assert bad.status_code == 422 and "Lateral Movement" in bad.json()["error"]["message"]
    names = [c["name"] for c in client.get("/api/v1/catalogs").json()]
    missing = client.get("/api/v1/coverage", params={"catalog": "nope"})
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert error["location"]["field"] == "catalog"
    assert names and all(n in error["message"] for n in names)


def test_pages_link_to_api_routes_with_parameters_they_take(client: TestClient) -> None:
    links = []
    for url in (
        "/matrix?catalog=sigma&platform=linux&groups=G0016",
        "/gaps?collected=Process+Creation&min_score=10&groups=APT29&platform=Windows",
    ):
        r = client.get(url)
        assert r.status_code == 200
        links += re.findall(r'href="(/api/v1/[^"]+)"', r.text)
    assert len(links) >= 5
    for link in links:
        r = client.get(link.replace("&amp;", "&"))
        assert r.status_code == 200, (link, r.text[:300])


def _raw_text_matches(needle: str) -> set[str]:
    """Active techniques whose id, name or description hold `needle`, from the raw bundle."""
    found = set()
    for o in rawdata.objects(E18):
        if o["type"] == "attack-pattern" and rawdata.active(o):
            fields = (rawdata.ext_id(o) or "", o.get("name", ""), o.get("description", ""))
            if any(needle in f.lower() for f in fields):
                found.add(rawdata.ext_id(o))
    return found


@pytest.mark.parametrize("needle", ["%", "_", "\\", "%appdata%"])
def test_technique_text_search_is_literal(client: TestClient, needle: str) -> None:
    """`%`, `_` and `\\` are matched as themselves, not as LIKE wildcards (which matched all 691)."""
    r = client.get("/api/v1/techniques", params={"q": needle, "limit": 1000})
    assert r.status_code == 200, r.text
    assert {t["id"] for t in r.json()["items"]} == _raw_text_matches(needle)


def _all_rules(client: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = client.get("/api/v1/rules", params={"limit": 1000, "offset": len(items)}).json()
        items += page["items"]
        if len(items) >= page["total"]:
            return items


@pytest.mark.parametrize("needle", ["%", "_"])
def test_rule_text_search_is_literal(client: TestClient, needle: str) -> None:
    """The SQL filter agrees with the same filter done in Python over every rule."""
    fields = ("rule_id", "title", "name", "description")
    expected = {
        (r["catalog"], r["rule_id"])
        for r in _all_rules(client)
        if any(needle in (r.get(f) or "").lower() for f in fields)
    }
    r = client.get("/api/v1/rules", params={"q": needle, "limit": 1000})
    assert r.status_code == 200, r.text
    got = {(x["catalog"], x["rule_id"]) for x in r.json()["items"]}
    assert r.json()["total"] == len(expected) < 1000
    assert got == expected


@pytest.mark.parametrize("path", ["/api/v1/techniques", "/api/v1/rules"])
@pytest.mark.parametrize("q", ["\x00zzzz", "a\x1bb", "x\x7f"])
def test_text_search_refuses_control_characters(client: TestClient, path: str, q: str) -> None:
    r = client.get(path, params={"q": q})
    assert r.status_code == 422, r.text
    assert "q" in r.text


def test_unknown_release_lists_the_loaded_ones(client: TestClient) -> None:
    r = client.get("/api/v1/coverage", params={"version": "9.9"})
    assert r.status_code == 404
    message = r.json()["error"]["message"]
    head, _, loaded = message.partition("; loaded: ")
    assert head == "no ATT&CK release loaded for enterprise 9.9"
    listed = client.get("/api/v1/releases").json()
    assert loaded.split(", ") == sorted(
        (f"{x['domain']} {x['version']}" for x in listed),
        key=lambda s: (s.split()[0], [int(p) for p in s.split()[1].split(".")]),
    )
