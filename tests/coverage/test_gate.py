"""The gate's decisions on rows made by hand (pure): each condition's outcome and message, the
errors that must never pass silently, and the baseline document read back within bounds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import jsonschema
import pytest

from app.core.errors import InvalidInput
from app.coverage import gate
from app.coverage.gate import Baseline, Conditions, Context, Filters
from tests.conftest import ROOT

SCHEMA = json.loads((ROOT / "kb" / "schemas" / "coverage-baseline.schema.json").read_text())
AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@dataclass
class R:
    id: str
    score: float = 0.0
    state: str | None = None
    effective_score: float | None = None

    @property
    def covered(self) -> bool:
        return self.score > 0


ROWS = [
    R("T1001", 40.0, "effective", 30.0),
    R("T1003", 80.0, "rule_without_telemetry", 0.0),
    R("T1003.001", 50.0, "effective", 50.0),
    R("T1059", 0.0, "blind", None),
    R("T1550.001", 0.0, "telemetry_only", None),
]
KNOWN = [r.id for r in ROWS] + ["T1078"]  # a release technique outside the rows' scope
CONTEXT = Context("enterprise", "18.1", ("ours",), None, Filters())


def run(c: Conditions, baseline: Baseline | None = None) -> list[gate.Outcome]:
    return gate.evaluate(ROWS, c, known=KNOWN, baseline=baseline)


def base(covered: list[str], effective: list[str] | None = None, **kw: object) -> Baseline:
    fields: dict[str, object] = dict(
        kbmap="0.1.0", at=AT, domain="enterprise", version="18.1", catalogs=["ours"]
    )
    fields.update(kw)
    return Baseline(covered=covered, effective=effective, **fields)


def test_min_covered_counts_rows_covered_and_fails_one_above() -> None:
    covered = sum(1 for r in ROWS if r.score > 0)
    assert covered == 3
    (ok,) = run(Conditions(min_covered=covered))
    assert ok == gate.Outcome("min-covered", True, "min-covered: 3 covered >= 3")
    (bad,) = run(Conditions(min_covered=covered + 1))
    assert bad == gate.Outcome("min-covered", False, "min-covered: 3 covered < 4")


def test_min_effective_counts_effective_state_and_needs_an_environment() -> None:
    (bad,) = run(Conditions(min_effective=3, environment="soc"))
    assert bad.message == "min-effective: 2 effective in environment soc < 3" and not bad.passed
    assert run(Conditions(min_effective=2, environment="soc"))[0].passed
    with pytest.raises(InvalidInput, match="needs --env"):
        run(Conditions(min_effective=1))


def test_require_names_every_missing_sorted_and_refuses_unknown_ids() -> None:
    assert gate.split_ids(["t1059, T1003", "T1003,,T1550.001"]) == ("T1059", "T1003", "T1550.001")
    (bad,) = run(Conditions(require=("T1550.001", "T1003", "T1059", "T1078")))
    assert bad.message == "require: not covered: T1059, T1078, T1550.001"
    (ok,) = run(Conditions(require=("T1003", "T1001")))
    assert ok.passed and ok.message == "require: all 2 covered"
    (env,) = run(Conditions(require=("T1003", "T1001"), environment="soc"))
    assert env.message == "require: not effective in environment soc: T1003"
    assert gate.unknown_ids(["T9999", "T1003", "FOO"], KNOWN) == ["FOO", "T9999"]
    with pytest.raises(InvalidInput, match="T9999"):
        run(Conditions(require=("T1003", "T9999")))


def test_no_loss_names_all_lost_and_passes_when_none() -> None:
    b = base(["T1001", "T1003", "T1059", "T1550.001", "T1999"], ["T1001", "T1003"])
    (bad,) = run(Conditions(no_loss=True), b)
    assert bad.message == "no-loss: 3 techniques no longer covered: T1059, T1550.001, T1999"
    (env,) = run(Conditions(no_loss=True, environment="soc"), b)
    assert env.message == "no-loss: 1 technique no longer effective: T1003"
    (ok,) = run(Conditions(no_loss=True), base(["T1001", "T1003"]))
    assert ok.passed and ok.message == "no-loss: all 2 covered in the baseline still are"
    with pytest.raises(InvalidInput, match="needs --baseline"):
        run(Conditions(no_loss=True))
    with pytest.raises(InvalidInput, match="saved without --env"):
        run(Conditions(no_loss=True, environment="soc"), base(["T1001"]))


def test_outcomes_come_in_a_fixed_order_and_failed_picks_the_failures() -> None:
    c = Conditions(
        min_covered=9, min_effective=1, require=("T1001",), no_loss=True, environment="e"
    )
    got = run(c, base([], []))
    assert [o.name for o in got] == ["min-covered", "min-effective", "require", "no-loss"]
    assert [o.name for o in gate.failed(got)] == ["min-covered"]
    assert not Conditions().asked() and Conditions(no_loss=True).asked()


def test_baseline_made_dumped_read_back_and_valid_against_the_schema() -> None:
    ctx = Context("enterprise", "18.1", ("a", "b"), "soc", Filters(platforms=["Windows"]))
    b = gate.make_baseline(ROWS, ctx, kbmap="0.1.0", at=AT)
    assert b.covered == ["T1001", "T1003", "T1003.001"]
    assert b.effective == ["T1001", "T1003.001"]
    assert b.scores == {"T1001": 40.0, "T1003": 80.0, "T1003.001": 50.0}
    assert b.effective_scores == {"T1001": 30.0, "T1003.001": 50.0}
    data = gate.dump_baseline(b)
    doc = json.loads(data)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc["at"] == "2026-12-01T08:00:00Z" and doc["format"] == "kbmap-coverage-baseline"
    assert gate.load_baseline(data, name="b.json", max_depth=64) == b
    plain = gate.make_baseline(ROWS, CONTEXT, kbmap="0.1.0", at=AT)
    assert plain.effective is None and plain.effective_scores is None
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(gate.dump_baseline(plain)))


def test_differences_are_warnings_naming_what_differs() -> None:
    assert gate.differences(base(["T1001"]), CONTEXT) == []
    other = base(["T1001"], version="17.1", catalogs=["theirs"], environment="soc")
    assert gate.differences(other, CONTEXT) == [
        "the baseline was made on release 'enterprise 17.1', this run is on 'enterprise 18.1'",
        "the baseline was made on catalogs 'theirs', this run is on 'ours'",
        "the baseline was made on environment 'soc', this run is on 'none'",
    ]
    filtered = base(["T1001"], filters=Filters(tactics=["execution"]))
    assert gate.differences(filtered, CONTEXT) == [
        "the baseline was made on filters 'tactics=execution', this run is on 'none'"
    ]


GOOD = gate.dump_baseline(base(["T1001"])).decode()


@pytest.mark.parametrize(
    ("text", "match", "field"),
    [
        ("{", "not valid JSON", None),
        ('{"format": "something-else"}', "not a kbmap coverage baseline", None),
        ("[1]", "not a kbmap coverage baseline", None),
        (GOOD.replace('"T1001"', '"T1001; rm"'), "not a technique id", "covered.0"),
        (GOOD.replace('"domain"', '"extra": 1, "domain"'), "Extra inputs", "extra"),
        (GOOD.replace('"18.1"', "18.1"), "string", "version"),
        (GOOD.replace('"format_version": 1', '"format_version": 2'), "1", "format_version"),
        ('{"format": "kbmap-coverage-baseline", "x": ' + "[" * 70 + "]" * 70 + "}", "deeper", None),
    ],
)
def test_a_bad_baseline_is_one_error_naming_file_and_field(
    text: str, match: str, field: str | None
) -> None:
    with pytest.raises(InvalidInput, match=match) as exc:
        gate.load_baseline(text.encode(), name="b.json", max_depth=64)
    assert exc.value.location is not None and exc.value.location.file == "b.json"
    assert exc.value.location.field == field
