"""The technique page in Markdown (pure): at most 8 kB whatever the page holds, long lists cut
with how many more, rule lines paged, and outside text kept to one clean line."""

from __future__ import annotations

from app.attack.models import Ref
from app.catalog.models import RuleRef
from app.technique_page.markdown import (
    PAGE_BYTES,
    attack_markdown,
    capped,
    fit,
    one_line,
    technique_markdown,
)
from app.technique_page.models import TechniquePage


def _page(rules: int = 0, groups: int = 0, description: str = "Short.") -> TechniquePage:
    return TechniquePage(
        id="T9999",
        name="Test Technique",
        description=description,
        url=None,
        domain="enterprise",
        version="18.1",
        revoked=False,
        deprecated=False,
        revoked_by=None,
        tactics=["execution"],
        platforms=["Windows"],
        is_subtechnique=False,
        parent=None,
        subtechniques=[],
        detection="",
        data_sources=[],
        mitigations=[],
        data_components=[],
        detection_strategies=[],
        groups=[Ref(id=f"G{i:04d}", name=f"Group {i}") for i in range(groups)],
        software=[],
        campaigns=[],
        rules=[
            RuleRef(
                catalog="c" if i % 2 else "b",
                rule_id=f"r{i:05d}",
                name=f"rule {i} " + "x" * 150,
                mapped_as="T9999",
                how="direct",
                technique="T9999",
            )
            for i in range(rules)
        ],
    )


def test_a_huge_page_fits_and_says_where_the_rules_go_on() -> None:
    page = _page(rules=3000, groups=500, description="word " * 20000)
    text = technique_markdown(page)
    assert len(text.encode()) <= PAGE_BYTES
    assert "## Rules (3000)" in text and "By catalog: b 1500, c 1500" in text
    shown = [line for line in text.splitlines() if line.startswith("- ")]
    assert 10 < len(shown) < 3000
    assert f"… {3000 - len(shown)} more rules: rules_offset={len(shown)}" in text
    assert "Groups (500): G0000 Group 0" in text and "… 480 more" in text
    assert "## Mitigations (0)" in text and "## Used by" in text  # after the rules, still there


def test_rule_pages_follow_one_another_without_gap_or_overlap() -> None:
    page = _page(rules=400)
    seen: list[str] = []
    offset = 0
    while True:
        text = technique_markdown(page, rules_offset=offset)
        assert len(text.encode()) <= PAGE_BYTES
        lines = [line for line in text.splitlines() if line.startswith("- ")]
        seen += lines
        more = [
            line for line in text.splitlines() if line.startswith("… ") and "rules_offset" in line
        ]
        if not more:
            break
        offset = int(more[0].rsplit("=", 1)[1])
        assert offset == len(seen)
    assert len(seen) == 400 == len(set(seen))


def test_an_offset_past_the_rules_shows_none_and_no_next() -> None:
    text = technique_markdown(_page(rules=5), rules_offset=99)
    assert "## Rules (5)" in text and "- b:" not in text and "rules_offset" not in text


def test_outside_text_is_one_bounded_line() -> None:
    hostile = "evil\r\n# Injected heading\x00\x1b[31m\u2028more" + "y" * 500
    line = one_line(hostile)
    assert "\n" not in line and "\r" not in line and "\x00" not in line and "\x1b" not in line
    assert "\u2028" not in line and len(line) == 200 and line.endswith("…")


def test_attack_text_drops_citations_and_keeps_links() -> None:
    text = "Use [PowerSploit](https://attack.mitre.org/software/S0194).(Citation: Some Report)<br>`iex`"
    assert attack_markdown(text, 1000) == (
        "Use [PowerSploit](https://attack.mitre.org/software/S0194).\n`iex`"
    )
    assert attack_markdown("a" * 50, 10) == "a" * 9 + "…"


def test_capped_and_fit() -> None:
    assert capped(["a", "b", "c"], 2) == "a, b … 1 more"
    assert capped([], 2) == ""
    big = "line é\n" * 3000
    cut = fit(big)
    assert len(cut.encode()) <= PAGE_BYTES and cut.endswith("(page cut at 8 kB)\n")
    assert fit("small") == "small"
