"""Coverage over time with filters: at every point, history?tactic= (and platform=) counts what
/coverage with the same filter counted right after that change.

Expected values come from /coverage, read after each change (not from the history)."""

from __future__ import annotations

import itertools
from pathlib import Path

from fastapi.testclient import TestClient

from tests.history.conftest import (
    API,
    covered_now,
    history,
    ok,
    sigma_subset,
    upload_catalog,
    upload_text,
)

CAT_A = """\
name: cat-a
attack:
  domain: enterprise
  version: "18.1"
rules:
  - id: R-1
    title: PowerShell
    techniques: [T1059.001]
  - id: R-2
    title: Scheduled task
    techniques: [T1053.005]
  - id: R-3
    title: LSASS memory
    techniques: [T1003.001]
  - id: R-4
    title: Cron
    techniques: [T1053.003]
"""
FILTERS = ({"tactic": "execution"}, {"platform": "Linux"}, {"tactic": "persistence"})


def test_filtered_points_match_coverage_at_each_moment(
    sqlite_client: TestClient, tmp_path: Path
) -> None:
    c = sqlite_client
    seen: list[list[int]] = []

    def moment() -> None:
        seen.append([covered_now(c, **f) for f in FILTERS])

    upload_text(c, "cat-a.yaml", CAT_A)
    moment()
    upload_catalog(c, sigma_subset(tmp_path), name="sigma-part")
    moment()
    ok(c.delete(f"{API}/catalogs/sigma-part"), 204)
    moment()
    upload_text(c, "cat-a.yaml", CAT_A.split("  - id: R-3")[0])  # removed
    moment()
    assert all(a != b for a, b in itertools.pairwise(seen))  # each change moved some
    for i, f in enumerate(FILTERS):
        points = history(c, **f)
        assert [p["covered"] for p in points] == [s[i] for s in seen], f
    tactics = {"execution": 0, "persistence": 2}
    for point, counts in zip(history(c), seen, strict=True):
        by = point["covered_by_tactic"]
        assert [by.get(t, 0) for t in tactics] == [counts[i] for i in tactics.values()]


def cat_a_with(rules: int) -> str:
    """CAT_A with its first `rules` rules."""
    head, *parts = CAT_A.split("  - id: R-")
    return head + "".join("  - id: R-" + part for part in parts[:rules])


def test_from_and_to_keep_the_points_between(sqlite_client: TestClient) -> None:
    c = sqlite_client
    for rules in range(1, 5):
        upload_text(c, "cat-a.yaml", cat_a_with(rules))
    points = history(c, catalog="cat-a")
    assert [p["covered"] for p in points] == [1, 2, 3, 4]
    window = history(c, catalog="cat-a", **{"from": points[1]["at"], "to": points[2]["at"]})
    assert [p["cause"]["snapshot"] for p in window] == [p["cause"]["snapshot"] for p in points[1:3]]
    page = ok(
        c.get(f"{API}/coverage/changes", params={"catalog": "cat-a", "limit": 2, "offset": 1})
    )
    every = ok(c.get(f"{API}/coverage/changes", params={"catalog": "cat-a"}))
    assert page["total"] == every["total"] == 4 and page["items"] == every["items"][1:3]
