"""Reasons (pure): each branch of why a technique's coverage moved, from hand-built rule
footprints before and after, the change's cause and the ATT&CK status of the technique."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from app.catalog.service import RuleFootprint
from app.core.changes import Change
from app.history.reasons import ReasonContext, Value, reason

T, T2 = "T1059.001", "T1059.003"
ON: Value = (40.0, None)


Rules = dict[str, RuleFootprint]
StatusOf = Callable[[str], tuple[str, str | None]]


def fp(
    *techniques: str,
    enabled: bool = True,
    status: str = "stable",
    originals: Sequence[tuple[str, str]] = (),
) -> RuleFootprint:
    return RuleFootprint(enabled, status, frozenset(techniques), tuple(originals))


def ctx(
    cause: str,
    before: Rules | None = None,
    after: Rules | None = None,
    status: StatusOf | None = None,
    *,
    catalog: str | None = None,
    environment: str | None = None,
    release: str | None = None,
) -> ReasonContext:
    change = Change(cause, "enterprise", catalog, environment, release)
    if status is None:
        return ReasonContext(change, before or {}, after or {})
    return ReasonContext(change, before or {}, after or {}, status)


@pytest.mark.parametrize(
    ("cause", "kw", "expected"),
    [
        ("logbook", {"catalog": "c"}, "score logged in the DeTT&CT score logbook"),
        ("catalog_delete", {"catalog": "c"}, "catalog deleted (c)"),
        ("environment_delete", {"environment": "lab"}, "environment deleted (lab)"),
    ],
)
def test_whole_scope_causes(cause: str, kw: dict[str, str], expected: str) -> None:
    assert reason(ctx(cause, **kw), T, ON, None) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("cause", ["environment_import", "environment_replace"])
def test_telemetry(cause: str) -> None:
    c = ctx(cause, environment="lab")
    effective, blind = (40.0, "effective"), (40.0, "rule_without_telemetry")
    assert reason(c, T, effective, blind) == "telemetry removed from the environment"
    assert reason(c, T, blind, effective) == "telemetry added to the environment"
    assert reason(c, T, None, effective) == "telemetry added to the environment"
    assert reason(c, T, blind, (20.0, "telemetry_only")) == "environment re-imported"


def test_release_ingest() -> None:
    statuses = {
        "T1574.002": ("revoked", "T1574.001"),
        "T1001": ("deprecated", None),
        "T1999": ("missing", None),
    }

    def status_of(t: str) -> tuple[str, str | None]:
        return statuses.get(t, ("active", None))

    c = ctx("release_ingest", status=status_of, release="enterprise 17.1")
    assert reason(c, "T1574.002", ON, None) == (
        "technique revoked in a new release (enterprise 17.1, revoked by T1574.001)"
    )
    assert reason(c, "T1001", ON, None) == "technique deprecated in a new release (enterprise 17.1)"
    assert reason(c, "T1999", ON, None) == "technique missing in a new release (enterprise 17.1)"
    assert reason(c, T, ON, (20.0, None)) == "new release (enterprise 17.1)"
    assert reason(c, "T1574.002", ON, ON) == "new release (enterprise 17.1)"  # still covered
    unnamed = ctx("release_ingest", status=status_of)
    assert reason(unnamed, T, ON, None) == "new release (ATT&CK enterprise)"


def test_rules_added_removed_and_counted() -> None:
    added = {f"r{i}": fp(T) for i in range(1, 6)}
    c = ctx("catalog_import", {}, added, catalog="cat")
    assert reason(c, T, None, ON) == "rule added (cat: r1, r2, r3 and 2 more)"
    two = ctx("catalog_replace", {"r1": fp(T)}, {"r1": fp(T), "r2": fp(T)}, catalog="cat")
    assert reason(two, T, (10.0, None), ON) == "rule added (cat: r2)"
    gone = ctx("catalog_replace", {"r1": fp(T), "r2": fp(T)}, {"r1": fp(T2)}, catalog="cat")
    assert reason(gone, T, ON, None) == "rule remapped (cat: r1); rule removed (cat: r2)"
    nameless = ctx("catalog_import", {}, {"r1": fp(T)})
    assert reason(nameless, T, None, ON) == "rule added (r1)"


def test_rules_enabled_disabled_deprecated_changed() -> None:
    on, off = {"r1": fp(T)}, {"r1": fp(T, enabled=False)}
    assert (
        reason(ctx("catalog_replace", off, on, catalog="c"), T, None, ON) == "rule enabled (c: r1)"
    )
    assert reason(ctx("catalog_replace", on, off, catalog="c"), T, ON, None) == (
        "rule disabled (c: r1)"
    )
    old = {"r1": fp(T, status="deprecated")}
    assert reason(ctx("catalog_replace", on, old, catalog="c"), T, ON, None) == (
        "rule deprecated (c: r1)"
    )
    same = ctx("catalog_replace", on, on, catalog="c")  # a severity changed: the same rules
    assert reason(same, T, ON, (60.0, None)) == "rule changed (c: r1)"
    assert reason(same, T, ON, (20.0, None)) == "rule changed (c: r1)"


def test_remapped_by_the_author_and_by_an_upgrade() -> None:
    by_author = ctx("catalog_replace", {"r1": fp(T)}, {"r1": fp(T2)}, catalog="c")
    assert reason(by_author, T2, None, ON) == "rule remapped (c: r1)"
    assert reason(by_author, T, ON, None) == "rule remapped (c: r1)"

    def status_of(t: str) -> tuple[str, str | None]:
        return {"T1574.002": ("revoked", "T1574.001"), "T1086": ("deprecated", None)}.get(
            t, ("active", None)
        )

    before = {"R-1": fp("T1574.002"), "R-2": fp("T1086")}
    after = {
        "R-1": fp("T1574.001", originals=[("T1574.001", "T1574.002")]),
        "R-2": fp(T, originals=[(T, "T1086")]),
    }
    up = ctx("catalog_upgrade", before, after, status_of, catalog="c", release="enterprise 17.1")
    revoked = "remapped (T1574.002 revoked by T1574.001) (c: R-1)"
    assert reason(up, "T1574.001", None, ON) == revoked
    assert reason(up, "T1574.002", ON, None) == revoked
    assert reason(up, T, None, ON) == "remapped (T1086 deprecated, now T1059.001) (c: R-2)"
    assert reason(up, "T1086", ON, None) == "remapped (T1086 deprecated, now T1059.001) (c: R-2)"
