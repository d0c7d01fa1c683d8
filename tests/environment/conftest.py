"""Environment fixtures: the DeTT&CT samples, raw ATT&CK facts read straight from the shared
bundles (never through kbmap's ingest), and one app per module on a copy of the catalog database.

Expected values in these tests come from here: `yaml.safe_load` of the DeTT&CT files, `json` of
the gzipped STIX bundles, and the API's own rule reads (`/rules`), never from app.coverage.
"""

from __future__ import annotations

import functools
import gzip
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
import yaml

from app.core.config import Limits, Settings
from tests.conftest import ATTACK_DIR, ROOT

if TYPE_CHECKING:
    from fastapi.testclient import TestClient
    from sqlalchemy import Engine

PEERS_DIR = ROOT.parent / "shared" / "peers" / "dettect"
ENDPOINTS = PEERS_DIR / "data-sources-endpoints.yaml"
ICS = PEERS_DIR / "data-sources-ics.yaml"
MOBILE = PEERS_DIR / "data-sources-mobile.yaml"
API = "/api/v1"


def peer_file(path: Path) -> bytes:
    assert path.exists(), f"shared DeTT&CT sample missing: {path}"
    return path.read_bytes()


def dettect_doc(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(peer_file(path))
    assert isinstance(doc, dict)
    return doc


@dataclass
class RawRelease:
    """What the tests need of one STIX bundle, read with json only."""

    components: dict[str, str] = field(default_factory=dict)  # lower name → name
    component_ids: dict[str, str] = field(default_factory=dict)  # stix id → name
    platforms: set[str] = field(default_factory=set)  # of live techniques
    techniques: dict[str, str] = field(default_factory=dict)  # stix id → ATT&CK id
    detectable: dict[str, set[str]] = field(default_factory=dict)  # component name → techniques
    uses: dict[str, set[str]] = field(default_factory=dict)  # group/software/campaign → techniques


def _live(o: dict[str, Any]) -> bool:
    return not o.get("revoked") and not o.get("x_mitre_deprecated")


def _attack_id(o: dict[str, Any]) -> str | None:
    for ref in o.get("external_references", []):
        if ref.get("source_name") in ("mitre-attack", "mitre-mobile-attack", "mitre-ics-attack"):
            return str(ref.get("external_id"))
    return None


@functools.cache
def raw_release(file_name: str) -> RawRelease:
    """Data components, platforms, detection links (≤17 `detects`; 18+ detection strategy →
    analytics → log-source references) and `uses` of one shared bundle."""
    with gzip.open(ATTACK_DIR / file_name, "rb") as fh:
        objects = [o for o in json.load(fh)["objects"] if _live(o)]
    raw = RawRelease()
    by_id = {o["id"]: o for o in objects}
    for o in objects:
        if o["type"] == "x-mitre-data-component":
            raw.components[o["name"].lower()] = o["name"]
            raw.component_ids[o["id"]] = o["name"]
        elif o["type"] == "attack-pattern":
            raw.platforms.update(o.get("x_mitre_platforms", []))
            raw.techniques[o["id"]] = _attack_id(o) or ""
    rels = [o for o in objects if o["type"] == "relationship"]
    for o in rels:
        _relationship(raw, by_id, o)
    for o in rels:  # a campaign's use is its attributed group's use too, as ATT&CK's site says
        src, dst = by_id.get(o["source_ref"]), by_id.get(o["target_ref"])
        if o["relationship_type"] == "attributed-to" and src and dst:
            campaign, group = _attack_id(src), _attack_id(dst)
            if campaign and group:
                raw.uses.setdefault(group, set()).update(raw.uses.get(campaign, set()))
    return raw


def _relationship(raw: RawRelease, by_id: dict[str, Any], rel: dict[str, Any]) -> None:
    src, tgt = rel["source_ref"], rel["target_ref"]
    tid = raw.techniques.get(tgt)
    if tid is None or src not in by_id:
        return
    if rel["relationship_type"] == "uses":
        user = _attack_id(by_id[src])
        if user:
            raw.uses.setdefault(user, set()).add(tid)
    elif rel["relationship_type"] == "detects":
        for name in _detecting_components(raw, by_id, by_id[src]):
            raw.detectable.setdefault(name, set()).add(tid)


def _detecting_components(raw: RawRelease, by_id: dict[str, Any], src: dict[str, Any]) -> set[str]:
    if src["type"] == "x-mitre-data-component":
        return {src["name"]}
    out: set[str] = set()
    if src["type"] == "x-mitre-detection-strategy":
        for ref in src.get("x_mitre_analytic_refs", []):
            analytic = by_id.get(ref, {})
            for ls in analytic.get("x_mitre_log_source_references", []):
                name = raw.component_ids.get(ls.get("x_mitre_data_component_ref", ""))
                if name:
                    out.add(name)
    return out


def upload(client: TestClient, name: str, data: bytes, file_name: str = "env.yaml") -> Any:
    """PUT /environments/{name}: create or replace; the response, checked to be 200/201."""
    r = client.put(f"{API}/environments/{name}", files={"file": (file_name, data)})
    assert r.status_code in (200, 201), r.text
    return r.json()


def coverage(client: TestClient, env: str, **params: str) -> Any:
    r = client.get(f"{API}/coverage", params={"environment": env, **params})
    assert r.status_code == 200, r.text
    return r.json()


def technique_rows(client: TestClient, env: str, **params: str) -> list[dict[str, Any]]:
    """Every row of /coverage/techniques with environment=, paged through."""
    rows: list[dict[str, Any]] = []
    while True:
        r = client.get(
            f"{API}/coverage/techniques",
            params={"environment": env, "limit": "1000", "offset": str(len(rows)), **params},
        )
        assert r.status_code == 200, r.text
        page = r.json()
        rows += page["items"]
        if len(rows) >= page["total"] or not page["items"]:
            return rows


def engine_of(client: TestClient) -> Engine:
    """The engine the app made in its lifespan."""
    return cast("Engine", client.app.state.engine)  # type: ignore[attr-defined]


def module_settings(tmp: Path, source: Path, limits: Limits) -> Settings:
    target = tmp / "env.sqlite"
    shutil.copy(source, target)
    return Settings(
        database_url=f"sqlite:///{target}",
        attack_source=str(ATTACK_DIR),
        environment="test",
        limits=limits,
    )


def make_client(settings: Settings) -> Iterator[TestClient]:
    from fastapi.testclient import TestClient

    from app.auth.service import create_token
    from app.main import create_app

    with TestClient(create_app(settings)) as c:
        _, token = create_token(engine_of(c), settings, name="env-writer", scopes=["write"])
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def client_with_sample(source: Path, tmp: Path, name: str) -> Iterator[TestClient]:
    """The app on a copy of `source`, with a write token and the DeTT&CT endpoints sample
    imported unchanged as `name`: a module fixture's body."""
    for c in make_client(module_settings(tmp, source, Limits())):
        upload(c, name, peer_file(ENDPOINTS), ENDPOINTS.name)
        yield c


@pytest.fixture(scope="module")
def env_settings(catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One writable copy of the catalog database per module (tests use distinct names)."""
    return module_settings(tmp_path_factory.mktemp("env"), catalog_sqlite_file, Limits())


@pytest.fixture(scope="module")
def env_client(env_settings: Settings) -> Iterator[TestClient]:
    """The app on the module's database, with a write token."""
    yield from make_client(env_settings)


@pytest.fixture(scope="module")
def sample_env(env_client: TestClient) -> dict[str, Any]:
    """The DeTT&CT endpoints sample, imported unchanged under its own name."""
    env: dict[str, Any] = upload(
        env_client, "Data-sources-sample", peer_file(ENDPOINTS), ENDPOINTS.name
    )
    return env
