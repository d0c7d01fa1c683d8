"""Pages through TestClient on the database with every catalog: the seed page, matrix colours
against the coverage API, gaps against the gaps API, escaping, HTML errors and read auth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_token
from app.catalog import service as catalog_service
from app.catalog.source import open_source
from app.core.config import Settings
from app.main import create_app
from app.web.views import score_fill
from tests.web.dom import Node, parse

SEED_LINE = (
    "mitre_attck_lateral_movement: PT-CR-956: Disable_Smartcard: "
    "Smart Card is disabled in the registry"
)


@pytest.fixture
def client(catalog_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(catalog_settings)) as c:
        yield c


def page(client: TestClient, url: str, status: int = 200) -> Node:
    r = client.get(url)
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    return parse(r.text)


def rule_lines(doc: Node) -> list[str]:
    return [n.text for n in doc.select("span", "rule-line")]


def test_technique_page_reproduces_the_seed_for_18(client: TestClient) -> None:
    doc = page(client, "/techniques/T1550.001")
    assert doc.by_id("technique").text == "T1550.001 : Application Access Token"
    assert SEED_LINE in rule_lines(doc)
    detection = doc.by_id("detection").text
    assert "DET0185" in detection and "AN0526" in detection
    assert "AWS:CloudTrail" in detection
    mitigations = [a.text for a in doc.by_id("mitigations").select("a", "attack-id")]
    assert mitigations == ["M1013", "M1021", "M1036", "M1041", "M1047"]
    hrefs = {a.text: a.attrs["href"] for a in doc.select("a", "attack-id")}
    assert hrefs["T1550"] == "/techniques/T1550?version=18.1&domain=enterprise"
    assert hrefs["M1047"] == "/mitigations/M1047?version=18.1&domain=enterprise"
    assert hrefs["DET0185"] == "/detection-strategies/DET0185?version=18.1&domain=enterprise"


def test_technique_page_for_17_shows_the_data_source_view(client: TestClient) -> None:
    doc = page(client, "/techniques/T1550.001?version=17.1")
    rows = doc.by_id("detection").select("tr")
    cells = [[td.text for td in tr.select("td")] for tr in rows[1:]]
    assert cells[0][:2] == ["DS0006", "Web Credential: Web Credential Usage"]
    assert cells[0][2].startswith("Monitor the use of application access tokens")
    assert "DET0185" not in doc.text
    assert SEED_LINE in rule_lines(doc)
    # citations are shown subtly and listed once
    assert doc.by_id("sources").select("li")[0].text.startswith("Auth0")


def test_technique_page_catalog_filter_and_remapped_rules(client: TestClient) -> None:
    doc = page(client, "/techniques/T1550.001?catalog=maxpatrol-siem")
    assert rule_lines(doc) == [SEED_LINE]
    api = client.get("/api/v1/techniques/T1059.001", params={"catalog": "sigma"}).json()
    remapped = [r for r in api["rules"] if r["how"] == "remapped"]
    assert remapped, "sigma maps T1086, which 18.1 revoked in favour of T1059.001"
    doc = page(client, "/techniques/T1059.001?catalog=sigma")
    tags = [li for li in doc.by_id("rules").select("li", "remapped")]
    assert len(tags) == len(remapped)
    assert f"remapped from {remapped[0]['mapped_as']}" in tags[0].text


def test_parent_page_keeps_sub_technique_rules_apart(client: TestClient) -> None:
    api = client.get("/api/v1/techniques/T1550", params={"catalog": "maxpatrol-siem"}).json()
    assert api["rules"] == [] and len(api["subtechnique_rules"]) == 1
    doc = page(client, "/techniques/T1550?catalog=maxpatrol-siem")
    sub = doc.select("details", "sub-rules")[0]
    assert SEED_LINE in sub.text and "T1550.001" in sub.text
    assert [a.text for a in doc.by_id("subtechniques").select("a")][:2] == [
        "T1550.001",
        "T1550.002",
    ]


def test_revoked_technique_names_its_replacement(client: TestClient) -> None:
    doc = page(client, "/techniques/T1086?version=18.1")
    notice = doc.select("p", "revoked")[0]
    assert "replaced by" in notice.text
    assert notice.select("a")[0].attrs["href"].startswith("/techniques/T1059.001?")


def test_matrix_cells_carry_the_coverage_api_scores_and_colours(client: TestClient) -> None:
    params = {"version": "18.1", "catalog": "sigma-attack18"}
    api = client.get("/api/v1/coverage/techniques", params={**params, "limit": 1000}).json()
    scores = {r["id"]: r for r in api["items"]}
    doc = page(client, "/matrix?version=18.1&catalog=sigma-attack18")
    covered = doc.by_id("cell-T1059-001")
    uncovered_id = next(
        r["id"] for r in api["items"] if not r["covered"] and not r["is_subtechnique"]
    )
    uncovered = doc.by_id("cell-" + uncovered_id.replace(".", "-"))
    for cell, tid in ((covered, "T1059.001"), (uncovered, uncovered_id)):
        score = scores[tid]["score"]
        assert float(cell.attrs["data-score"]) == score
        assert f"background-color: {score_fill(score)}" in cell.attrs["style"]
    assert "covered" in covered.classes and scores["T1059.001"]["score"] > 0
    assert score_fill(scores["T1059.001"]["score"]) != "#ffffff"
    assert "uncovered" in uncovered.classes and "#ffffff" in uncovered.attrs["style"]
    # every cell agrees with the API, and each technique is drawn once per tactic it has
    cells = doc.find_all(lambda n: "data-score" in n.attrs)
    for c in cells:
        r = scores[c.attrs["data-technique"]]
        if not r["tactic_scores"]:
            assert float(c.attrs["data-score"]) == r["score"], c.attrs
    assert len(cells) == sum(len(r["tactics"]) for r in api["items"])
    assert doc.by_id("cell-T1550-001").attrs["data-technique"] == "T1550.001"
    link = doc.by_id("cell-T1550-001").select("a")[0].attrs["href"]
    assert link == "/techniques/T1550.001?version=18.1&domain=enterprise"


def test_matrix_columns_follow_the_matrix_order_and_link_layers(client: TestClient) -> None:
    tactics = client.get("/api/v1/tactics", params={"version": "18.1"}).json()
    doc = page(client, "/matrix?version=18.1&catalog=sigma&platform=Linux&groups=G0016")
    sections = doc.select("section", "tactic")
    assert [s.attrs["id"] for s in sections] == [f"tactic-{t['shortname']}" for t in tactics]
    summary = client.get(
        "/api/v1/coverage",
        params={"version": "18.1", "catalog": "sigma", "platform": "Linux", "groups": "G0016"},
    ).json()
    counts = [s.select("p", "count")[0].text for s in sections]
    assert counts == [f"{t['covered']}/{t['total']} covered" for t in summary["by_tactic"]]
    hrefs = [a.attrs["href"] for a in doc.select("a", "button")]
    query = "domain=enterprise&version=18.1&catalog=sigma&platform=Linux&groups=G0016"
    assert f"/api/v1/layers/coverage?{query}" in hrefs
    assert f"/api/v1/layers/coverage.svg?{query}" in hrefs
    layer = client.get(f"/api/v1/layers/coverage?{query}")
    assert layer.status_code == 200 and layer.json()["domain"] == "enterprise-attack"
    svg = client.get(f"/api/v1/layers/coverage.svg?{query}")
    assert svg.status_code == 200 and svg.text.lstrip().startswith(("<svg", "<?xml"))
    api = client.get(
        "/api/v1/coverage/techniques",
        params={"version": "18.1", "catalog": "sigma", "platform": "Linux", "groups": "G0016"},
    ).json()
    drawn = {c.attrs["data-technique"] for c in doc.find_all(lambda n: "data-score" in n.attrs)}
    assert drawn == {r["id"] for r in api["items"]}


def test_gaps_page_ranks_like_the_gaps_api(client: TestClient) -> None:
    api = client.get("/api/v1/gaps", params={"groups": "G0016", "limit": 20}).json()
    doc = page(client, "/gaps?groups=G0016")
    rows = doc.select("table", "gaps")[0].select("tr")[1:]
    assert [r.attrs["data-technique"] for r in rows[:20]] == [g["id"] for g in api["items"]]
    assert [float(r.attrs["data-priority"]) for r in rows[:20]] == [
        g["priority"] for g in api["items"]
    ]
    first = rows[0].text
    assert "G0016" in first and f"threat {api['items'][0]['parts']['threat']}" in first
    for m in api["items"][0]["mitigations"]:
        assert m["id"] in first


def test_gaps_page_filters_and_pages(client: TestClient) -> None:
    params = {"collected": "Process Creation", "platform": "Windows", "limit": "5", "offset": "5"}
    api = client.get("/api/v1/gaps", params=params).json()
    doc = page(client, "/gaps?collected=Process+Creation&platform=Windows&limit=5&offset=5")
    rows = doc.select("table", "gaps")[0].select("tr")[1:]
    assert [r.attrs["data-technique"] for r in rows] == [g["id"] for g in api["items"]]
    assert rows[0].select("td", "rank")[0].text == "6"
    pager = [a.text for a in doc.select("p", "pager")[0].select("a")]
    assert pager == ["← previous", "next →"]


def test_home_and_catalog_report(client: TestClient) -> None:
    doc = page(client, "/")
    assert {"sigma", "sigma-attack18", "open-xp-rules", "maxpatrol-siem"} <= {
        a.text for a in doc.select("a") if a.attrs.get("href", "").startswith("/catalogs/")
    }
    summary = client.get("/api/v1/coverage").json()
    bars = doc.select("table", "tactics")[0].select("tr")[1:]
    assert len(bars) == len(summary["by_tactic"])
    t0 = summary["by_tactic"][0]
    assert f"{t0['covered']}/{t0['total']}" in bars[0].text
    report = client.get("/api/v1/catalogs/sigma").json()["report"]
    doc = page(client, "/catalogs/sigma")
    for outcome, count in report["outcomes"].items():
        row = doc.by_id(f"outcome-{outcome}")
        assert row.select("td", "num")[0].text == str(count)
    assert str(report["rules_without_technique"]) in doc.text
    remapped = doc.by_id("outcome-remapped").text
    assert "attack.t1086" in remapped and "T1059.001" in remapped


def test_home_counts_rules_mapped_like_the_coverage_api_and_the_report(
    client: TestClient,
) -> None:
    """One meaning per label: "Rules mapped" is the report's and the API's rules_mapped."""
    doc = page(client, "/")
    table = next(t for t in doc.select("table") if "Rules mapped" in t.select("tr")[0].text)
    head = [th.text for th in table.select("th")]
    assert head == ["Catalog", "Rules", "Rules mapped", "Techniques covered"]
    shown = {
        row.select("a")[0].text: row.select("td", "num")[1].text for row in table.select("tr")[1:]
    }
    api = {c["catalog"]: c for c in client.get("/api/v1/coverage").json()["by_catalog"]}
    assert shown == {name: str(c["rules_mapped"]) for name, c in api.items()}
    for name, c in api.items():
        report = client.get(f"/api/v1/catalogs/{name}").json()["report"]
        assert c["rules_mapped"] == report["rules_mapped"]
        assert c["techniques_covered"] <= report["techniques_mapped"]


def test_untrusted_rule_text_is_escaped(
    client: TestClient, catalog_settings: Settings, tmp_path: Path
) -> None:
    doc = tmp_path / "evil.yaml"
    doc.write_text(
        "name: evil\nrules:\n"
        "  - id: X-1\n"
        "    name: <b>bold</b>\n"
        '    title: "<script>alert(1)</script>"\n'
        '    package: "<img src=x onerror=alert(2)>"\n'
        "    techniques: [T1550.001]\n"
    )
    catalog_service.import_catalog(
        client.app.state.engine,  # type: ignore[attr-defined]
        catalog_settings,
        source=open_source(doc, catalog_settings.limits),
    )
    r = client.get("/techniques/T1550.001", params={"catalog": "evil"})
    assert r.status_code == 200
    assert "<script>alert(1)</script>" not in r.text and "<img src=x" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert rule_lines(parse(r.text)) == [
        "<img src=x onerror=alert(2)>: X-1: <b>bold</b>: <script>alert(1)</script>"
    ]
    report = client.get("/catalogs/evil")
    assert report.status_code == 200 and "<script>" not in report.text


def test_errors_are_html_pages_with_the_status(client: TestClient) -> None:
    doc = page(client, "/techniques/T9999", 404)
    assert "T9999" in doc.by_id("error-message").text
    page(client, "/matrix?version=9.9", 404)
    page(client, "/catalogs/nope", 404)
    page(client, "/matrix?version=latest", 422)
    page(client, "/gaps?groups=G9999", 422)
    api = client.get("/api/v1/techniques/T9999")  # the API keeps its JSON errors
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


def test_pages_follow_the_read_auth_setting(catalog_settings: Settings) -> None:
    settings = catalog_settings.model_copy(update={"read_auth": "required", "token_key": "k" * 32})
    with TestClient(create_app(settings)) as c:
        r = c.get("/techniques/T1550.001")
        assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
        assert r.headers["www-authenticate"] == "Bearer"
        _, token = create_token(c.app.state.engine, settings, name="reader", scopes=["read"])  # type: ignore[attr-defined]
        r = c.get("/techniques/T1550.001", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and SEED_LINE in r.text
        assert c.get("/static/kbmap.css").status_code == 200  # the stylesheet is public
