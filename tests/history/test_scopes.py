"""Which history a request names, and the requests refused: an unknown filter value or catalog,
catalog and environment together, a `since` that is not a point of the scope."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.history.conftest import API, history, upload_text
from tests.history.test_trend import CAT_A


def test_refused_requests(sqlite_client: TestClient) -> None:
    c = sqlite_client
    upload_text(c, "cat-a.yaml", CAT_A)
    upload_text(c, "cat-b.yaml", CAT_A.replace("cat-a", "cat-b"))
    [a_point] = history(c, catalog="cat-a")
    [b_point] = history(c, catalog="cat-b")

    r = c.get(f"{API}/coverage/history", params={"tactic": "no-such-tactic"})
    assert r.status_code == 422, r.text
    assert "no-such-tactic" in r.text and "execution" in r.text and "persistence" in r.text
    r = c.get(f"{API}/coverage/history", params={"catalog": "cat-a", "environment": "x"})
    assert r.status_code == 422, r.text
    r = c.get(f"{API}/coverage/changes", params={"since": "last tuesday"})
    assert r.status_code == 422 and "since" in r.text, r.text
    r = c.get(f"{API}/coverage/history", params={"from": "last tuesday"})
    assert r.status_code == 422, r.text
    not_a = b_point["cause"]["snapshot"]
    r = c.get(f"{API}/coverage/changes", params={"catalog": "cat-a", "since": str(not_a)})
    assert r.status_code == 404, r.text
    assert str(a_point["cause"]["snapshot"]) in r.json()["error"]["message"]
    ok_since = c.get(f"{API}/coverage/changes", params={"catalog": "cat-b", "since": str(not_a)})
    assert ok_since.status_code == 200 and ok_since.json()["total"] == 0, ok_since.text
