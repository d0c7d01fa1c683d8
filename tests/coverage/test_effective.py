"""The effective-coverage judge on small hand-built environments: when a rule fires, the state
precedence, quality weighing and visibility (real-data checks: tests/environment/)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.attack.service import TechniqueInfo
from app.core.config import CoverageWeights
from app.coverage.effective import Judge, Needs, Reach, technique_platforms
from app.environment.service import EnvironmentTelemetry, SystemTelemetry

pytestmark = pytest.mark.unit


def _env(
    *systems: tuple[str, set[str], dict[str, float]], exceptions: frozenset[str] = frozenset()
) -> EnvironmentTelemetry:
    return EnvironmentTelemetry(
        name="t",
        domain="enterprise",
        key=(1, "now", 1),
        systems=tuple(SystemTelemetry(n, frozenset(p), c) for n, p, c in systems),
        spelled={"process creation": "Process Creation", "file creation": "File Creation"},
        exceptions=frozenset(exceptions),
    )


WIN = ("win", {"windows"}, {"process creation": 1.0})
LINUX = ("lin", {"linux"}, {"file creation": 0.4})


def _needs(platforms: set[str], components: set[str]) -> Needs:
    return Needs(frozenset(platforms), frozenset(components))


def test_a_rule_fires_only_where_platform_and_component_meet() -> None:
    reach = Reach.of(_env(WIN, LINUX))
    assert reach.fires(_needs({"windows"}, {"process creation"})) == (0b01, 1.0)
    assert reach.fires(_needs({"linux"}, {"process creation"})) == (0, 0.0)
    assert reach.fires(_needs({"linux"}, {"file creation"})) == (0b10, 0.4)
    # no platform: any system that collects one of its components
    assert reach.fires(_needs(set(), {"file creation", "process creation"})) == (0b11, 1.0)
    assert reach.fires(_needs({"windows"}, set())) == (0, 0.0)


def _judge(
    env: EnvironmentTelemetry, needs: dict[int, Needs], detect: dict[str, set[str]]
) -> Judge:
    facts = SimpleNamespace(data_components=detect)
    return Judge(Reach.of(env), facts, [("cat", needs)], CoverageWeights(), env.spelled)  # type: ignore[arg-type]


def _info(*platforms: str) -> TechniqueInfo:
    return TechniqueInfo("T1", "t", "active", ("execution",), platforms, False, None)


@pytest.mark.parametrize(
    ("rules", "detect", "state"),
    [
        ({1: _needs({"windows"}, {"process creation"})}, set(), "effective"),
        # an unplaced rule beside a silent one: it might fire, so unknown, never effective
        ({1: _needs(set(), set()), 2: _needs({"linux"}, {"process creation"})}, set(), "unknown"),
        ({2: _needs({"linux"}, {"process creation"})}, set(), "rule_without_telemetry"),
        ({}, {"Process Creation"}, "telemetry_only"),
        ({}, {"Network Traffic Flow"}, "blind"),
    ],
)
def test_state_precedence(rules: dict[int, Needs], detect: set[str], state: str) -> None:
    judge = _judge(_env(WIN, LINUX), rules, {"T1": detect})
    v = judge("T1", _info("Windows", "Linux"), dict.fromkeys(rules, 1.0))
    assert v.state == state
    if state == "rule_without_telemetry":
        assert v.missing == {"Process Creation"}


def test_weight_zero_rules_do_not_count() -> None:
    judge = _judge(_env(WIN), {1: _needs({"windows"}, {"process creation"})}, {"T1": set()})
    assert judge("T1", _info("Windows"), {1: 0.0}).state == "blind"


def test_effective_score_is_weighed_by_quality() -> None:
    env = _env(("lin", {"linux"}, {"file creation": 0.4}))
    judge = _judge(env, {1: _needs({"linux"}, {"file creation"})}, {"T1": set()})
    full = _judge(
        _env(("lin", {"linux"}, {"file creation": 1.0})), judge.needs[0][1], {"T1": set()}
    )
    low, high = (j("T1", _info("Linux"), {1: 1.0}).score for j in (judge, full))
    assert high > 0
    assert low == pytest.approx(round(high * 0.4, 1), abs=0.1)


def test_visibility_needs_a_system_of_the_techniques_platforms() -> None:
    judge = _judge(_env(WIN), {}, {"T1": {"Process Creation"}})
    assert judge("T1", _info("Linux"), {}).state == "blind"
    assert judge("T1", _info("Windows"), {}).visible == ("Process Creation",)
    # ICS 18 techniques have the platform "None": any system
    assert technique_platforms(_info("None")) == frozenset()
    assert judge("T1", _info("None"), {}).state == "telemetry_only"


def test_an_exception_has_no_visibility() -> None:
    judge = _judge(_env(WIN, exceptions={"T1"}), {}, {"T1": {"Process Creation"}})
    v = judge("T1", _info("Windows"), {})
    assert (v.state, v.visible, v.detectable_by) == ("blind", (), 1)
