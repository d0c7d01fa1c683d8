"""The catalog page's rule list (filters, paging, errors) and the catalog comparison page.

Counts are read from the raw sigma tarball (tags, status); the comparison is checked against the
API's comparison (/api/v1/coverage/compare), the only other reading of it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.web.dom import Node, parse
from tests.web.test_rule_page import raw_rules, technique_tags

SIGMA18 = "sigma-attack18"
OUTCOMES = ("ok", "remapped", "deprecated", "unknown", "wrong_domain", "unparsable")


@pytest.fixture(scope="module")
def client(
    catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """Read-only pages: one copy of the catalog database for the module."""
    import shutil

    db = tmp_path_factory.mktemp("catalog-rules") / "kbmap.sqlite"
    shutil.copy(catalog_sqlite_file, db)
    with TestClient(create_app(Settings(database_url=f"sqlite:///{db}", environment="test"))) as c:
        yield c


@pytest.fixture(scope="module")
def raw() -> dict[str, dict[str, Any]]:
    return raw_rules("sigma-attack18-rules.tar.gz")


def html(client: TestClient, url: str, expect: int = 200, **params: Any) -> Node:
    # no `params` at all when there are none: an empty one would drop the URL's own query
    r = client.get(url, params=params) if params else client.get(url)
    assert r.status_code == expect, r.text[:800]
    assert r.headers["content-type"].startswith("text/html")
    return parse(r.text)


def listed(doc: Node) -> list[str]:
    return [tr.attrs["data-rule-id"] for tr in doc.select("tr", "rule")]


def total(doc: Node) -> int:
    """The list's total, as its heading shows it ("<total> of <rules>")."""
    return int(doc.by_id("rules").select("h2")[0].select("small")[0].text.split()[0])


def every_id(client: TestClient, limit: int = 500, **params: Any) -> list[str]:
    """Every rule id the list shows, following its "next" links from the first page."""
    ids: list[str] = []
    doc = html(client, f"/catalogs/{SIGMA18}", limit=limit, **params)
    while True:
        ids += listed(doc)
        nxt = [a for a in doc.select("a") if a.attrs.get("rel") == "next"]
        if not nxt:
            return ids
        href = nxt[0].attrs["href"].split("#")[0]
        for key, value in params.items():
            assert f"{key}={value}" in href  # the pager keeps the filters
        doc = html(client, href)


def test_paging_covers_every_rule_exactly_once(client: TestClient, raw: dict[str, Any]) -> None:
    ids = every_id(client)
    assert len(ids) == len(set(ids))
    assert set(ids) == set(raw)
    assert ids == sorted(ids)
    first = html(client, f"/catalogs/{SIGMA18}")
    assert total(first) == len(raw) and len(listed(first)) == 50  # the default page
    # the import report stays on the page
    assert first.by_id("outcome-ok")


def test_counts_by_status_equal_the_raw_tarball(client: TestClient, raw: dict[str, Any]) -> None:
    by_status = Counter(str(d.get("status")) for d in raw.values() if d.get("status"))
    for status, n in by_status.items():
        assert total(html(client, f"/catalogs/{SIGMA18}", status=status)) == n, status


def test_counts_by_tactic_equal_the_raw_tags(client: TestClient, raw: dict[str, Any]) -> None:
    for tactic in ("execution", "credential-access", "lateral-movement"):
        tag = f"attack.{tactic}"  # sigma writes `credential_access` and `credential-access`
        want = {
            i
            for i, d in raw.items()
            if tag in [t.lower().replace("_", "-") for t in d.get("tags") or []]
        }
        assert want, tactic
        assert set(every_id(client, tactic=tactic)) == want, tactic


def test_counts_by_technique_equal_the_raw_tags(client: TestClient, raw: dict[str, Any]) -> None:
    for tid in ("T1218.011", "T1003.001", "T1021.002"):
        want = {i for i, d in raw.items() if f"attack.{tid.lower()}" in technique_tags(d)}
        assert want, tid
        ids = every_id(client, technique=tid)
        assert set(ids) == want, tid
        doc = html(client, f"/catalogs/{SIGMA18}", technique=tid.lower())  # any case
        assert total(doc) == len(want)


def test_text_filter_and_outcome_filter(client: TestClient, raw: dict[str, Any]) -> None:
    word = "mimikatz"
    want = {
        i for i, d in raw.items() if word in i.lower() or word in str(d.get("title", "")).lower()
    }
    assert want
    assert set(every_id(client, q=word.upper())) == want
    remapped = {
        i
        for i in every_id(client, outcome="remapped")
        if any(
            tr.attrs["data-outcome"] == "remapped"
            for tr in html(client, f"/catalogs/{SIGMA18}/rules/{i}").select("tr", "mapping")
        )
    }
    assert remapped and remapped == set(every_id(client, outcome="remapped"))


@pytest.mark.parametrize(
    ("param", "value", "known"),
    [
        ("tactic", "no-such-tactic", "execution"),
        ("outcome", "fine", ", ".join(OUTCOMES)),
        ("status", "approved", "stable"),
        ("technique", "T9999", "T1218.011"),
        ("technique", "powershell", "T1059.001"),
    ],
)
def test_unknown_filter_values_list_the_known_ones(
    client: TestClient, param: str, value: str, known: str
) -> None:
    doc = html(client, f"/catalogs/{SIGMA18}", 422, **{param: value})
    message = doc.by_id("error-message").text
    assert value in message and known in message


def test_hostile_queries_are_422_html(client: TestClient) -> None:
    for q in ("\x00drop", "a\x1fb", "x" * 10_000):
        html(client, f"/catalogs/{SIGMA18}", 422, q=q)
    html(client, f"/catalogs/{SIGMA18}", 422, limit=0)
    html(client, f"/catalogs/{SIGMA18}", 422, limit=100_000)
    html(client, f"/catalogs/{SIGMA18}", 422, offset=-1)
    # literal text: a `%` is a percent sign, not "anything"
    assert total(html(client, f"/catalogs/{SIGMA18}", q="%")) < 100


def test_rule_links_open_their_pages(client: TestClient) -> None:
    doc = html(client, "/catalogs/maxpatrol-siem")
    rows = doc.select("tr", "rule")
    assert {tr.attrs["data-rule-id"] for tr in rows} >= {"PT-CR-956"}
    for tr in rows:
        href = tr.select("a")[0].attrs["href"]
        assert href == f"/catalogs/maxpatrol-siem/rules/{tr.attrs['data-rule-id']}"
        assert client.get(href).status_code == 200


def compare_api(client: TestClient, a: str, b: str) -> dict[str, Any]:
    r = client.get("/api/v1/coverage/compare", params={"a": a, "b": b})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_comparison_numbers_equal_the_api(client: TestClient) -> None:
    a, b = "sigma", SIGMA18
    api = compare_api(client, a, b)
    doc = html(client, "/compare", catalog=[a, b])
    table = doc.by_id("compare-tactics")
    for row in api["by_tactic"]:
        tr = table.find_all(lambda n, t=row["tactic"]: n.attrs.get("data-tactic") == t)[0]
        for key in ("both", "only_a", "only_b", "neither"):
            assert int(tr.select("td", key.replace("_", "-"))[0].text) == row[key], row
        n = row["both"] + row["only_a"] + row["only_b"] + row["neither"]
        assert f"{row['both'] + row['only_a']}/{n}" in tr.select("td", "side-a")[0].text
        assert f"{row['both'] + row['only_b']}/{n}" in tr.select("td", "side-b")[0].text
    overall = doc.by_id("compare-all")
    for key in ("both", "only_a", "only_b", "neither"):
        assert int(overall.select("td", key.replace("_", "-"))[0].text) == len(api[key])
        if key != "neither":
            section = doc.by_id(f"set-{key.replace('_', '-')}")
            ids = [x.text for x in section.select("a", "attack-id")]
            assert ids == api[key]
            assert all(
                x.attrs["href"].startswith(f"/techniques/{x.text}?")
                for x in section.select("a", "attack-id")
            )


def test_comparison_errors_and_links(client: TestClient) -> None:
    assert "Pick two catalogs" in html(client, "/compare").text
    doc = html(client, "/compare", 422, catalog=["sigma"])
    assert "sigma-attack18" in doc.by_id("error-message").text  # lists the known catalogs
    html(client, "/compare", 422, catalog=["sigma", "sigma"])
    assert "nope" in html(client, "/compare", 404, catalog=["sigma", "nope"]).text
    for page in ("/", f"/catalogs/{SIGMA18}"):
        link = html(client, page).by_id("compare-link").attrs["href"]
        assert link.startswith("/compare?")
        assert client.get(link).status_code == 200


def test_the_catalog_links_the_diff_into_its_release_and_unknown_ids_are_not_links(
    client: TestClient,
) -> None:
    """sigma was validated against enterprise 18.1 and 17.1 is loaded too: the diff that matters
    to it is 17.1 → 18.1 with its impact. A technique id the release does not know (the report's
    `unknown` examples) is shown, never linked to a page that would be a 404."""
    doc = html(client, "/catalogs/sigma")
    (link,) = [a for a in doc.select("a") if a.attrs.get("id") == "diff-link"]
    href = link.attrs["href"]
    assert href == "/diff?from=17.1&to=18.1&domain=enterprise&catalog=sigma"
    assert client.get(href).status_code == 200
    unknown = doc.by_id("outcome-unknown")
    assert unknown.select("code")  # the catalog has unknown ids, shown as text
    for a in unknown.select("a"):
        assert client.get(a.attrs["href"]).status_code == 200, a.attrs["href"]
