"""Browser hardening: security headers, the Host allowlist, links that ignore the Host header,
and /docs served offline from a package, behind the read guard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.docs import ASSETS_DIR
from app.api.http_guards import host_name
from app.auth.service import create_token
from app.core.config import Settings
from app.main import create_app


@pytest.fixture
def client(loaded_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(loaded_settings)) as c:
        yield c


def csp(header: str) -> dict[str, list[str]]:
    parts = (p.split() for p in header.split(";") if p.strip())
    return {p[0]: p[1:] for p in parts}


@pytest.mark.parametrize(
    "path", ["/", "/techniques/T1550.001", "/api/v1/releases", "/no-such-page", "/static/kbmap.css"]
)
def test_every_response_has_the_hardening_headers(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    policy = csp(r.headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["style-src"]  # style attributes only, no <style>


def test_pages_have_no_inline_script_or_style_element(client: TestClient) -> None:
    """What the policy would block: any <script> with a body or without src, <style>, on*=."""
    for path in ("/", "/matrix", "/gaps", "/techniques/T1550.001", "/catalogs/nothing"):
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert "<style" not in html and not re.search(r"\son[a-z]+=", html), path


@pytest.mark.parametrize(
    ("header", "name"),
    [("Example.COM:8000", "example.com"), ("[::1]:80", "::1"), ("localhost.", "localhost")],
)
def test_host_name(header: str, name: str) -> None:
    assert host_name(header) == name


def test_unknown_host_is_refused_with_a_json_400(client: TestClient) -> None:
    """DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own name as Host."""
    r = client.get("/api/v1/releases", headers={"Host": "evil.example"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_request"
    assert "evil.example" in r.json()["error"]["message"]
    assert "KBMAP_ALLOWED_HOSTS" in r.json()["error"]["message"]
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000", "testserver"):
        assert client.get("/api/v1/releases", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_setting_replaces_the_default(loaded_settings: Settings) -> None:
    settings = loaded_settings.model_copy(update={"allowed_hosts": "kb.example, Other.Example"})
    with TestClient(create_app(settings), base_url="http://kb.example") as c:
        assert c.get("/api/v1/releases").status_code == 200
        assert c.get("/healthz", headers={"Host": "other.example:9"}).status_code == 200
        assert c.get("/healthz", headers={"Host": "localhost"}).status_code == 400
        assert c.get("/healthz", headers={"Host": "testserver"}).status_code == 400


def gap_links(c: TestClient, host: str) -> set[str]:
    r = c.get("/api/v1/layers/gaps", headers={"Host": host})
    assert r.status_code == 200, r.text
    urls = {link["url"] for t in r.json()["techniques"] for link in t.get("links", [])}
    return {u.split("/techniques/")[0] for u in urls if "attack.mitre.org" not in u}  # the pages


def test_layer_links_use_the_public_url_never_the_host_header(loaded_settings: Settings) -> None:
    anyhost = loaded_settings.model_copy(update={"allowed_hosts": "*"})
    with TestClient(create_app(anyhost)) as c:
        assert gap_links(c, "evil.example") == {"http://testserver:80"}  # the address reached
    public = anyhost.model_copy(update={"public_url": "https://kb.example/kbmap"})
    with TestClient(create_app(public)) as c:
        assert gap_links(c, "evil.example") == {"https://kb.example/kbmap"}


def test_docs_are_offline_and_local(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404  # ReDoc's page would load from its CDN
    for page in ("/docs",):
        r = client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert refs and all(ref.startswith("/docs/") for ref in refs), refs
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text)  # no inline script
        policy = csp(r.headers["content-security-policy"])
        assert policy["script-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
        for ref in refs:
            asset = client.get(ref)
            assert asset.status_code == 200, ref
            kind = asset.headers["content-type"]
            want = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
            assert kind.startswith(want[Path(ref).suffix]), (ref, kind)
    bundle = client.get("/docs/assets/swagger-ui-bundle.js").content
    assert bundle == (ASSETS_DIR / "swagger-ui-bundle.js").read_bytes()
    assert b"SwaggerUIBundle" in bundle
    spec = client.get("/openapi.json")
    assert spec.status_code == 200 and spec.json()["info"]["title"] == "kbmap"


def test_docs_and_schema_follow_read_auth(loaded_settings: Settings) -> None:
    settings = loaded_settings.model_copy(update={"read_auth": "required"})
    with TestClient(create_app(settings)) as c:
        for path in ("/docs", "/openapi.json"):
            assert c.get(path).status_code == 401, path
        assert c.get("/docs/assets/swagger-ui.css").status_code == 200  # assets are public
        _, token = create_token(c.app.state.engine, settings, name="reader", scopes=["read"])  # type: ignore[attr-defined]
        auth = {"Authorization": f"Bearer {token}"}
        assert c.get("/openapi.json", headers=auth).json()["openapi"].startswith("3.")


def test_cli_layer_links_use_the_public_url(loaded_settings: Settings) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "KBMAP_DATABASE_URL": loaded_settings.database_url}
    env["KBMAP_PUBLIC_URL"] = "https://kb.example/"
    run = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "layer", "gaps"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    layer = json.loads(run.stdout)
    urls = {link["url"] for t in layer["techniques"] for link in t.get("links", [])}
    ours = {
        u.split("/techniques/")[0] for u in urls if "/techniques/" in u and "attack.mitre" not in u
    }
    assert ours == {"https://kb.example"}
