"""Pure view helpers: safe ATT&CK text, links, rule lines, colours, matrix columns."""

from __future__ import annotations

from app.attack.models import TacticRead
from app.attack.service import TechniqueIndex, TechniqueInfo
from app.catalog.models import RuleRef
from app.coverage.models import TechniqueCoverage
from app.layer.kinds.coverage import COVERAGE_GRADIENT
from app.web import views


def test_text_is_escaped_and_keeps_paragraphs_lists_code_and_links() -> None:
    text = views.TextRenderer(version="18.1", domain="enterprise")
    html = text(
        "Uses <script>alert(1)</script> and <code>a<b</code>.(Citation: Src A)\n\n"
        "* one [T1059](https://attack.mitre.org/techniques/T1059/001)\n"
        "* two [site](https://example.org/x?a=1&b=2) and [bad](javascript:alert(1))\n\n"
        "line one\nline **two** `x`(Citation: Src B)(Citation: Src A)"
    )
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<code>a&lt;b</code>" in html
    assert html.count("<p>") == 2 and "<ul><li>one" in html
    assert '<a href="/techniques/T1059.001?version=18.1&amp;domain=enterprise">T1059</a>' in html
    assert 'href="https://example.org/x?a=1&amp;b=2" rel="noopener noreferrer"' in html
    assert "javascript:" not in html and "bad" in html
    assert "line one<br>line <strong>two</strong> <code>x</code>" in html
    assert text.citations == ["Src A", "Src B"]
    assert html.count('href="#cite-1"') == 2 and "(Citation" not in html


def test_attack_href_stays_inside_kbmap_with_the_site_as_secondary() -> None:
    assert views.attack_href("T1550.001", version="17.1") == "/techniques/T1550.001?version=17.1"
    assert views.attack_href("G0016") == "/groups/G0016"
    assert views.attack_href("DS0006", version="17.1") == "/data-sources/DS0006?version=17.1"
    assert views.attack_href("DC0007") == "/data-components/DC0007"
    assert views.attack_href("DET0185") == "/detection-strategies/DET0185"
    assert views.attack_href("AN0526") == "/analytics/AN0526"
    assert views.attack_href("S0002") == "/software/S0002"
    assert views.attack_href("TA0008") == "https://attack.mitre.org/tactics/TA0008/"
    assert views.site_href("G0016") == "https://attack.mitre.org/groups/G0016/"
    assert views.site_href("T1550.001") == "https://attack.mitre.org/techniques/T1550/001/"
    assert views.attack_href(None) is None and views.attack_href("x<y") is None


def test_rule_line_is_the_seed_format_without_repeats() -> None:
    seed = RuleRef(
        catalog="maxpatrol-siem",
        rule_id="PT-CR-956",
        name="Disable_Smartcard",
        title="Smart Card is disabled in the registry",
        package="mitre_attck_lateral_movement",
        mapped_as="T1550.001",
        how="direct",
        technique="T1550.001",
    )
    assert views.rule_line(seed) == (
        "mitre_attck_lateral_movement: PT-CR-956: Disable_Smartcard: "
        "Smart Card is disabled in the registry"
    )
    sigma = seed.model_copy(update={"package": None, "rule_id": "abc", "name": "T", "title": "T"})
    assert views.rule_line(sigma) == "abc: T"


def test_colours_white_when_uncovered_gradient_otherwise() -> None:
    assert views.score_fill(0) == "#ffffff"
    assert views.score_fill(100) == COVERAGE_GRADIENT[-1]
    assert views.score_fill(1) != views.score_fill(50) != views.score_fill(100)
    assert views.ink("#ffffff") == "#000000" and views.ink("#000000") == "#ffffff"


def _row(
    tid: str, score: float, tactics: list[str], parent: str | None = None
) -> TechniqueCoverage:
    return TechniqueCoverage(
        id=tid,
        name=f"name {tid}",
        tactics=tactics,
        platforms=[],
        is_subtechnique=bool(parent),
        parent=parent,
        rules=1 if score else 0,
        remapped_rules=0,
        score=score,
        covered=score > 0,
        catalogs=[],
        subtechniques_total=0,
        subtechniques_covered=0,
        rolled_up_rules=0,
        rolled_up_score=score,
        rolled_up_covered=score > 0,
        tactic_scores={},
    )


def test_matrix_columns_group_sub_techniques_and_keep_ids_unique() -> None:
    tactics = [
        TacticRead(id="TA1", name="One", shortname="one", description="", order=0),
        TacticRead(id="TA2", name="Two", shortname="two", description="", order=1),
    ]
    info = TechniqueInfo(
        id="T1000",
        name="Parent",
        status="active",
        tactics=("one", "two"),
        platforms=(),
        is_subtechnique=False,
        revoked_by=None,
    )
    index = TechniqueIndex(
        domain="enterprise",
        version="18.1",
        release_id=1,
        techniques={"T1000": info},
        tactics=tactics,
        other_domains={},
    )
    rows = [
        _row("T1000.001", 40, ["one", "two"], parent="T1000"),  # parent itself out of scope
        _row("T2000", 0, ["two"]),
    ]
    one, two = views.matrix_columns(tactics, rows, index, version="18.1", domain="enterprise")
    assert [c.id for c in one.cells] == ["T1000"] and one.cells[0].row is None
    assert one.cells[0].name == "Parent" and one.cells[0].subs[0].html_id == "cell-T1000-001"
    # by name: "name T2000" before "Parent"
    assert [c.html_id for c in two.cells] == ["cell-T2000", "cell-T1000--two"]
    assert two.cells[1].subs[0].html_id == "cell-T1000-001--two"
    assert two.cells[0].fill == "#ffffff" and not two.cells[0].covered
    assert (one.covered, one.total, two.covered, two.total) == (1, 1, 1, 2)
    assert two.cells[0].href == "/techniques/T2000?version=18.1&domain=enterprise"
