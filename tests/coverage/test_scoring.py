"""Coverage scoring on small hand-made weights, and the defaults against the README's own table.

Expected numbers are worked out by hand (a custom cap makes the arithmetic visible) or read from
the README's "Coverage score" table, never from the code under test.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.config import CoverageWeights
from app.coverage.scoring import rule_weight, score
from tests.conftest import ROOT

# stable/high weigh 1, test/low a half and a quarter; a rule without either weighs 0.5 × 0.4
SMALL = CoverageWeights(
    status={"stable": 1.0, "test": 0.5, "deprecated": 0.0},
    level={"high": 1.0, "low": 0.25},
    unknown_status=0.5,
    unknown_level=0.4,
    cap=2.0,
)


def weight(status: str | None, level: str | None, *, enabled: bool = True) -> float:
    return rule_weight(enabled=enabled, status=status, level=level, w=SMALL)


@pytest.mark.parametrize(
    ("status", "level", "expected"),
    [
        ("stable", "high", 1.0),
        ("test", "high", 0.5),
        ("stable", "low", 0.25),
        ("test", "low", 0.125),
        ("deprecated", "high", 0.0),
    ],
)
def test_a_rule_weighs_its_status_times_its_level(status: str, level: str, expected: float) -> None:
    assert weight(status, level) == pytest.approx(expected)


def test_a_disabled_rule_weighs_nothing_whatever_its_status() -> None:
    assert weight("stable", "high", enabled=False) == 0.0
    assert weight(None, None, enabled=False) == 0.0


def test_status_and_level_are_matched_without_case() -> None:
    assert weight("STABLE", "High") == 1.0
    assert weight("Test", "LOW") == pytest.approx(0.125)


@pytest.mark.parametrize(("status", "level"), [(None, None), ("", ""), ("beta", "severe")])
def test_a_missing_or_unknown_status_and_level_take_the_unknown_weights(
    status: str | None, level: str | None
) -> None:
    assert weight(status, level) == pytest.approx(0.5 * 0.4)
    assert weight("stable", level) == pytest.approx(0.4)
    assert weight(status, "high") == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ([], 0.0),
        ([0.0, 0.0], 0.0),
        ([1.0], 50.0),
        ([0.5, 0.5, 0.5], 75.0),
        ([1.0, 1.0], 100.0),
        ([1.0, 1.0, 1.0], 100.0),  # past the cap a technique is not more than covered
        ([0.125], 6.2),  # 6.25 rounds to one decimal, half to even
        ([0.25, 0.125], 18.8),
    ],
)
def test_score_is_the_capped_sum_on_a_0_to_100_scale(weights: list[float], expected: float) -> None:
    assert score(weights, SMALL) == expected


def test_score_takes_any_iterable_once() -> None:
    assert score((weight("stable", "high") for _ in range(1)), SMALL) == 50.0


def test_a_technique_with_only_disabled_or_deprecated_rules_is_not_covered() -> None:
    rules = [weight("stable", "high", enabled=False), weight("deprecated", "high")]
    assert score(rules, SMALL) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), max_size=8),
    st.floats(min_value=0, max_value=5, allow_nan=False),
)
def test_another_rule_never_lowers_a_score_and_it_stays_within_0_and_100(
    weights: list[float], extra: float
) -> None:
    before, after = score(weights, SMALL), score([*weights, extra], SMALL)
    assert 0.0 <= before <= after <= 100.0


# ---- the defaults are the README's table --------------------------------------------------------

ROW = re.compile(r"^\| ([^|]+?) \| ([\d.]+) \| ([^|]+?) \| ([\d.]+) \|$")


def _readme_weights() -> tuple[dict[str, float], dict[str, float], float]:
    """Status and level weights, and the cap, as the README's "Coverage score" section states."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("**Coverage score.**", 1)[1].split("**", 1)[0]
    status: dict[str, float] = {}
    level: dict[str, float] = {}
    for line in section.splitlines():
        if found := ROW.match(line.strip()):
            for names, value, into in ((1, 2, status), (3, 4, level)):
                for name in found.group(names).split(", "):
                    into[name] = float(found.group(value))
    cap = re.search(r"`cap` is ([\d.]+)", section)
    assert cap and status and level, "README's coverage score table not found"
    return status, level, float(cap.group(1))


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> CoverageWeights:
    for name in ("STATUS", "LEVEL", "CAP", "UNKNOWN_STATUS", "UNKNOWN_LEVEL"):
        monkeypatch.delenv(f"KBMAP_COVERAGE_{name}", raising=False)
    return CoverageWeights()


def test_default_weights_are_the_readme_table(defaults: CoverageWeights) -> None:
    status, level, _ = _readme_weights()
    none = "none given"
    for s, sw in status.items():
        for lv, lw in level.items():
            got = rule_weight(
                enabled=True,
                status=None if s == none else s,
                level=None if lv == none else lv,
                w=defaults,
            )
            assert got == pytest.approx(sw * lw), (s, lv)


def test_three_stable_high_rules_make_100_by_default(defaults: CoverageWeights) -> None:
    _, _, cap = _readme_weights()
    one = rule_weight(enabled=True, status="stable", level="high", w=defaults)
    assert defaults.cap == cap
    assert score([one] * 2, defaults) < 100.0
    assert score([one] * 3, defaults) == 100.0
