"""Offline and shareable: no page loads anything from another host, ATT&CK ids link inside kbmap,
pages print cleanly (print.css), and layers and SVGs link to the pages through the configured
public URL.

Every page kind is requested; the kinds other parts of issue 18 add (groups, rules, search, …)
are checked once their route answers, and skipped while it does not exist yet.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from app.web.rendering import STATIC_DIR
from tests.web.dom import Node, parse

PUBLIC = "https://kb.example.org/kbmap"

PAGES = [
    "/",
    "/matrix",
    "/matrix?version=17.1&catalog=sigma",
    "/techniques/T1550.001",
    "/techniques/T1550.001?version=17.1",
    "/gaps",
    "/catalogs/sigma",
    "/catalogs/maxpatrol-siem",
    "/environments",
    "/history",
    "/diff?from=17.1&to=18.1",
    "/diff",  # the form alone (400)
    "/techniques/T9999",  # an error page
]
# Kinds other parts are still writing: checked when their route exists.
NEW_PAGES = [
    "/groups/G0016",
    "/software/S0154",
    "/campaigns/C0024",
    "/mitigations/M1026",
    "/data-sources/DS0009",
    "/data-components/DC0001",
    "/detection-strategies/DET0185",
    "/analytics/AN0526",
    "/catalogs/maxpatrol-siem/rules/PT-CR-956",
    "/catalogs/sigma/rules?technique=T1059.001",
    "/search?q=APT29",
    "/compare?catalog=sigma&catalog=sigma-attack18",
]
ASSET_ATTRS = ("src", "data", "poster", "srcset", "action", "formaction", "background")
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)""", re.I)
CSS_IMPORT = re.compile(r"""@import\s+(?:url\()?\s*['"]?([^'")\s;]+)""", re.I)


@pytest.fixture(scope="module")
def db(catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("offline") / "kbmap.sqlite"
    shutil.copy(catalog_sqlite_file, path)
    return path


@pytest.fixture(scope="module")
def client(db: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=f"sqlite:///{db}", environment="test"))) as c:
        yield c


def outside(url: str) -> bool:
    """An address on another host: a scheme other than data:, or a host (`//cdn…`)."""
    url = url.strip()
    parts = urlsplit(url)
    return bool(parts.netloc) or url.startswith("//") or parts.scheme not in ("", "data")


def css_problems(css: str, where: str) -> list[str]:
    found = [(m, "url()") for m in CSS_URL.findall(css)]
    found += [(m, "@import") for m in CSS_IMPORT.findall(css)]
    return [f"{where}: {how} {u}" for u, how in found if outside(u)]


def page_problems(doc: Node, url: str) -> list[str]:
    """Absolute URLs in the page's assets, and ATT&CK ids whose primary link leaves kbmap."""
    out: list[str] = []
    for n in doc.walk():
        for attr in ASSET_ATTRS:
            values = n.attrs.get(attr, "").split(",") if attr == "srcset" else [n.attrs.get(attr)]
            out += [f"{url}: <{n.tag} {attr}={v}>" for v in values if v and outside(v.split()[0])]
        if n.tag == "link" and outside(n.attrs.get("href", "")):
            out.append(f"{url}: <link href={n.attrs['href']}>")
        if n.tag == "meta" and "url=" in n.attrs.get("content", "").lower():
            out.append(f"{url}: <meta content={n.attrs['content']}>")
        out += css_problems(n.attrs.get("style", ""), f"{url} style")
        if n.tag == "style":
            out += css_problems(n.text, f"{url} <style>")
        if n.tag == "a" and "attack-id" in n.classes and outside(n.attrs.get("href", "")):
            out.append(f"{url}: ATT&CK id {n.text} links out: {n.attrs['href']}")
    return out


def stylesheets(doc: Node) -> list[str]:
    return [n.attrs["href"] for n in doc.select("link") if "stylesheet" in n.attrs.get("rel", "")]


def check(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.headers["content-type"].startswith("text/html"), url
    doc = parse(r.text)
    problems = page_problems(doc, url)
    for href in stylesheets(doc) + [
        n.attrs["src"] for n in doc.select("script") if "src" in n.attrs
    ]:
        asset = client.get(href)
        assert asset.status_code == 200, f"{url}: {href} → {asset.status_code}"
        if href.endswith(".css"):
            problems += css_problems(asset.text, href)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("url", PAGES)
def test_page_loads_nothing_from_another_host(client: TestClient, url: str) -> None:
    status = client.get(url).status_code
    assert status in (200, 400, 404), (url, status)
    check(client, url)


@pytest.mark.parametrize("url", NEW_PAGES)
def test_new_page_kinds_load_nothing_from_another_host(client: TestClient, url: str) -> None:
    status = client.get(url).status_code
    if status == 404 and not client.get(url).text.lstrip().startswith("<!doctype html>"):
        pytest.skip(f"{url}: no route yet")  # the part that adds it is not merged
    check(client, url)


def test_the_pages_do_check_something(client: TestClient) -> None:
    """The checks see what they look for: links to stylesheets, ids linked inside kbmap, and an
    outside address when one is there."""
    doc = parse(client.get("/techniques/T1550.001").text)
    assert "/static/kbmap.css" in stylesheets(doc)
    assert [a for a in doc.select("a", "attack-id") if a.attrs.get("href", "").startswith("/")]
    bad = parse('<img src="https://cdn.example.org/x.png"><link rel=stylesheet href="//cdn/x.css">')
    assert len(page_problems(bad, "sample")) == 2
    assert css_problems("a{background:url('http://x/y.png')} @import 'https://f/x.css';", "c")


def test_every_static_stylesheet_is_self_contained(client: TestClient) -> None:
    files = sorted(STATIC_DIR.glob("*.css"))
    assert {f.name for f in files} >= {"kbmap.css", "print.css"}
    for f in files:
        r = client.get(f"/static/{f.name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
        assert not css_problems(r.text, f.name)


def test_api_docs_are_served_from_kbmap(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert "default-src 'self'" in r.headers["content-security-policy"]
    check(client, "/docs")
    doc = parse(r.text)
    assert [n for n in doc.select("script") if n.attrs.get("src", "").startswith("/docs/")]


# ---- print ---------------------------------------------------------------------------------


def css_rules(css: str) -> list[tuple[str, str]]:
    """(selectors, declarations) of a flat stylesheet (at-rule headers dropped)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    return [(s.strip(), d.strip()) for s, d in re.findall(r"([^{}]+)\{([^{}]*)\}", css)]


def test_every_page_links_the_print_stylesheet_for_print_only(client: TestClient) -> None:
    for url in ("/", "/techniques/T1550.001", "/matrix", "/diff?from=17.1&to=18.1"):
        doc = parse(client.get(url).text)
        links = [n for n in doc.select("link") if n.attrs.get("href") == "/static/print.css"]
        assert len(links) == 1, url
        assert links[0].attrs.get("media") == "print" and links[0].attrs["rel"] == "stylesheet"


def test_print_stylesheet_hides_navigation_and_keeps_the_legend(client: TestClient) -> None:
    rules = css_rules(client.get("/static/print.css").text)

    def hidden(selector: str) -> bool:
        return any(
            selector in [x.strip() for x in sels.split(",")] and "display: none" in decls
            for sels, decls in rules
        )

    for sel in ("header.top", "nav", "form", "button", ".button", "input", "select"):
        assert hidden(sel), sel
    for sel in (".legend", ".swatch", ".matrix", ".cell", "main"):
        assert not hidden(sel), sel
    legend = [d for s, d in rules if ".legend" in s.split(",")[0] and "display" in d]
    assert legend and "display: block" in legend[0]
    assert any("print-color-adjust: exact" in d for _, d in rules)
    assert any("max-width: none" in d for s, d in rules if "main" in s)
    assert any("attr(href)" in d for s, d in rules if "::after" in s)  # links are shown


def print_rules(client: TestClient) -> list[tuple[str, str]]:
    """Every rule that applies on paper: print.css, and `@media print` blocks of the other sheets
    (each part of the site may add its own)."""
    rules = css_rules(client.get("/static/print.css").text)
    for f in sorted(STATIC_DIR.glob("*.css")):
        css = client.get(f"/static/{f.name}").text
        for m in re.finditer(r"@media\s+print\s*\{", css):
            depth, i = 1, m.end()
            while depth and i < len(css):
                depth += {"{": 1, "}": -1}.get(css[i], 0)
                i += 1
            rules += css_rules(css[m.end() : i - 1])
    return rules


SIMPLE = re.compile(r"^([a-z0-9]*)((?:\.[\w-]+)*)(:has\(\.legend\))?$")


def matches(selector: str, n: Node) -> tuple[bool, bool]:
    """(the simple selector matches the element, it is a `:has(.legend)` selector); compound
    selectors are not read (none of them reaches the legend)."""
    m = SIMPLE.match(selector.strip())
    if m is None or not (m.group(1) or m.group(2)):
        return False, False
    tag, classes = m.group(1), {c for c in m.group(2).split(".") if c}
    hit = (not tag or tag == n.tag) and classes <= n.classes
    return hit, bool(m.group(3))


def on_paper(n: Node, rules: list[tuple[str, str]]) -> bool:
    hidden = shown = False
    for sels, decls in rules:
        for sel in sels.split(","):
            hit, has_legend = matches(sel, n)
            if hit and "display: none" in decls:
                hidden = True
            if hit and "!important" in decls and "display: block" in decls:
                shown = shown or has_legend or "legend" in n.classes
    return shown or not hidden


def path_to(root: Node, pred: Callable[[Node], bool]) -> list[Node]:
    if pred(root):
        return [root]
    for c in root.children:
        if isinstance(c, Node) and (found := path_to(c, pred)):
            return [root, *found]
    return []


@pytest.mark.parametrize("url", ["/matrix", "/matrix?groups=G0016&catalog=sigma"])
def test_the_matrix_legend_prints(client: TestClient, url: str) -> None:
    """The legend sits among buttons on the matrix page: print hides the buttons, not it, nor
    any element around it, whichever stylesheet hides what."""
    rules = print_rules(client)
    doc = parse(client.get(url).text)
    path = path_to(doc, lambda n: "legend" in n.classes)
    assert path
    for n in path[1:]:
        assert on_paper(n, rules), f"<{n.tag} class={n.attrs.get('class')}> is hidden on paper"
    buttons = doc.select("a", "button")
    assert buttons and not any(on_paper(b, rules) for b in buttons)


# ---- layers and SVG through the public URL ---------------------------------------------------


@pytest.fixture(scope="module")
def public_client(db: Path) -> Iterator[TestClient]:
    s = Settings(database_url=f"sqlite:///{db}", environment="test", public_url=PUBLIC)
    with TestClient(create_app(s)) as c:
        yield c


def test_layer_links_point_at_the_pages_through_the_public_url(
    public_client: TestClient, client: TestClient
) -> None:
    layer = public_client.get("/api/v1/layers/coverage?catalog=maxpatrol-siem&version=17.1")
    assert layer.status_code == 200
    entries = [t for t in layer.json()["techniques"] if t.get("links")]
    assert entries
    for t in entries:
        urls = [x["url"] for x in t["links"] if "url" in x]
        page = f"{PUBLIC}/techniques/{t['techniqueID']}?version=17.1&domain=enterprise"
        assert page in urls
        rules = [u for u in urls if "/rules/" in u]
        assert all(u.startswith(f"{PUBLIC}/catalogs/maxpatrol-siem/rules/") for u in rules)
    some = next(t for t in entries if any("/rules/" in x.get("url", "") for x in t["links"]))
    for u in [x["url"] for x in some["links"] if x.get("url", "").startswith(PUBLIC)]:
        path = u[len(PUBLIC) :]
        if "/rules/" in path and client.get(path).status_code == 404:
            continue  # the rule page is another part's: checked once it exists
        assert client.get(path).status_code == 200, path


def test_svg_tiles_link_to_the_pages_through_the_public_url(public_client: TestClient) -> None:
    r = public_client.get("/api/v1/layers/coverage.svg?catalog=sigma")
    assert r.status_code == 200
    pairs = re.findall(
        r'<a href="([^"]+)"><g class="technique"[^>]*data-technique="([^"]+)"', r.text
    )
    assert pairs
    for href, tid in pairs:
        assert href == f"{PUBLIC}/techniques/{tid}?version=18.1&amp;domain=enterprise"


def test_without_a_public_url_links_use_the_address_reached(client: TestClient) -> None:
    layer = client.get("/api/v1/layers/coverage?catalog=maxpatrol-siem").json()
    urls = [x["url"] for t in layer["techniques"] for x in t.get("links") or [] if "url" in x]
    assert any(u.startswith("http://testserver:80/techniques/") for u in urls)
