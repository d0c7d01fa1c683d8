"""A coverage history built through the API, for the delta layer and the history page tests: the
shipped MaxPatrol catalog (so `catalog=` names one catalog among several), then sigma-attack18 as
`sa18` imported, deleted and imported again. What sa18 covered is read from /coverage before the
delete, never from the history."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.auth.service import create_token
from app.core.config import Settings
from app.main import create_app
from tests.conftest import ATTACK_DIR, ROOT, catalog_file

API = "/api/v1"
NAME = "sa18"


@dataclass
class Steps:
    client: TestClient
    snapshots: list[int]  # sa18's points: import, delete, import again
    causes: list[str]
    covered: set[str]  # what /coverage/techniques?catalog=sa18 called covered before the delete


def _upload(client: TestClient, path: Path | str, **form: str) -> None:
    data = Path(path).read_bytes()
    r = client.post(f"{API}/catalogs", files={"file": (Path(path).name, data)}, data=form)
    assert r.status_code == 201, r.text


def covered_rows(client: TestClient, **params: str) -> set[str]:
    """Every covered technique /coverage/techniques lists for the scope, paged through."""
    rows: list[dict[str, Any]] = []
    while True:
        r = client.get(
            f"{API}/coverage/techniques",
            params={"limit": "1000", "offset": str(len(rows)), **params},
        )
        assert r.status_code == 200, r.text
        page = r.json()
        rows += page["items"]
        if len(rows) >= page["total"] or not page["items"]:
            return {x["id"] for x in rows if x["covered"]}


def history_steps(loaded: Path, tmp: Path) -> Iterator[Steps]:
    """A module fixture's body: the app on a copy of `loaded`, with a write token and the steps
    above done."""
    target = tmp / "history.sqlite"
    shutil.copy(loaded, target)
    settings = Settings(
        database_url=f"sqlite:///{target}", attack_source=str(ATTACK_DIR), environment="test"
    )
    with TestClient(create_app(settings)) as c:
        _, token = create_token(c.app.state.engine, settings, name="historian", scopes=["write"])  # type: ignore[attr-defined]
        c.headers["Authorization"] = f"Bearer {token}"
        _upload(c, ROOT / "kb" / "catalogs" / "maxpatrol-siem.yaml")
        sigma = catalog_file("sigma-attack18-rules.tar.gz")
        _upload(c, sigma, name=NAME, domain="enterprise", version="18.1")
        covered = covered_rows(c, catalog=NAME, version="18.1")
        assert c.delete(f"{API}/catalogs/{NAME}").status_code == 204
        _upload(c, sigma, name=NAME, domain="enterprise", version="18.1")
        r = c.get(f"{API}/coverage/history", params={"catalog": NAME})
        assert r.status_code == 200, r.text
        points = r.json()["points"]
        yield Steps(
            c,
            [p["cause"]["snapshot"] for p in points],
            [p["cause"]["cause"] for p in points],
            covered,
        )
