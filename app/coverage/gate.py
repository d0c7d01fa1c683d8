"""Pure: the coverage gate `kbmap check` runs in CI. Technique rows (and a baseline) in, each
condition's outcome out; and the baseline document `--save` writes and `--no-loss` reads.

No database and no terminal here, so a gate decision can be tested on rows made by hand and
read the same whatever front end renders it (text, GitHub annotations, JUnit).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.core.errors import InvalidInput, Location
from app.core.limits import json_depth_ok, loads_json

BASELINE_FORMAT = "kbmap-coverage-baseline"
TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")


class Row(Protocol):
    """What the gate reads of a technique row (`TechniqueCoverage` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def covered(self) -> bool: ...
    @property
    def score(self) -> float: ...
    @property
    def state(self) -> str | None: ...
    @property
    def effective_score(self) -> float | None: ...


class Filters(BaseModel):
    """The coverage filters a baseline was made under (as given on the command line)."""

    model_config = ConfigDict(extra="forbid")
    platforms: list[str] = Field(default_factory=list, max_length=100)
    tactics: list[str] = Field(default_factory=list, max_length=100)
    groups: list[str] = Field(default_factory=list, max_length=1000)


class Baseline(BaseModel):
    """What coverage was when `kbmap check --save` ran (kb/schemas/coverage-baseline.schema.json):
    the ids compared by `--no-loss`, and the context a later run warns about when it differs."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["kbmap-coverage-baseline"] = "kbmap-coverage-baseline"
    format_version: Literal[1] = 1
    kbmap: str = Field(max_length=100)
    at: datetime
    domain: str = Field(max_length=50)
    version: str = Field(max_length=50)
    catalogs: list[str] = Field(max_length=1000)
    environment: str | None = Field(default=None, max_length=500)
    filters: Filters = Field(default_factory=Filters)
    covered: list[str] = Field(max_length=20_000)
    effective: list[str] | None = Field(default=None, max_length=20_000)
    scores: dict[str, float] = Field(default_factory=dict)
    effective_scores: dict[str, float] | None = None


@dataclass(frozen=True)
class Context:
    """The question a run answers: compared with a baseline's to warn when they differ."""

    domain: str
    version: str
    catalogs: tuple[str, ...]
    environment: str | None
    filters: Filters


@dataclass(frozen=True)
class Conditions:
    """What a run demands; None or empty is a condition not asked."""

    min_covered: int | None = None
    min_effective: int | None = None
    require: tuple[str, ...] = ()
    no_loss: bool = False
    environment: str | None = None  # given: --require and --no-loss judge effective techniques

    def asked(self) -> bool:
        return bool(
            self.min_covered is not None
            or self.min_effective is not None
            or self.require
            or self.no_loss
        )


@dataclass(frozen=True)
class Outcome:
    """One condition judged: its name (`min-covered`), whether it holds, and why in one line."""

    name: str
    passed: bool
    message: str


def split_ids(values: Iterable[str]) -> tuple[str, ...]:
    """`--require T1550.001,t1059 --require T1003`: ids upper-cased, deduplicated, in order."""
    ids = (v.strip().upper() for value in values for v in value.split(","))
    return tuple(dict.fromkeys(i for i in ids if i))


def unknown_ids(ids: Iterable[str], known: Iterable[str]) -> list[str]:
    """The ids the release does not have (a typo must not pass as 'covered'), sorted."""
    have = set(known)
    return sorted(i for i in set(ids) if i not in have)


def covered_ids(rows: Iterable[Row]) -> set[str]:
    return {r.id for r in rows if r.covered}


def effective_ids(rows: Iterable[Row]) -> set[str]:
    return {r.id for r in rows if r.state == "effective"}


def evaluate(
    rows: Sequence[Row],
    conditions: Conditions,
    *,
    known: Iterable[str],
    baseline: Baseline | None = None,
) -> list[Outcome]:
    """Every asked condition's outcome, in a fixed order. An unknown `require` id, or `no_loss`
    without a baseline (or under an environment against one made without), is InvalidInput."""
    out: list[Outcome] = []
    if conditions.min_covered is not None:
        out.append(
            _at_least("min-covered", len(covered_ids(rows)), conditions.min_covered, "covered")
        )
    if conditions.min_effective is not None:
        out.append(_min_effective(rows, conditions))
    if conditions.require:
        out.append(_require(rows, conditions, known))
    if conditions.no_loss:
        out.append(_no_loss(rows, conditions, baseline))
    return out


def failed(outcomes: Iterable[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if not o.passed]


def _at_least(name: str, have: int, want: int, what: str) -> Outcome:
    if have >= want:
        return Outcome(name, True, f"{name}: {have} {what} >= {want}")
    return Outcome(name, False, f"{name}: {have} {what} < {want}")


def _min_effective(rows: Sequence[Row], conditions: Conditions) -> Outcome:
    if conditions.environment is None or conditions.min_effective is None:
        raise InvalidInput("--min-effective needs --env NAME", Location(field="--min-effective"))
    what = f"effective in environment {conditions.environment}"
    return _at_least("min-effective", len(effective_ids(rows)), conditions.min_effective, what)


def _require(rows: Sequence[Row], conditions: Conditions, known: Iterable[str]) -> Outcome:
    unknown = unknown_ids(conditions.require, known)
    if unknown:
        raise InvalidInput(
            f"not techniques of this release: {', '.join(unknown)}", Location(field="--require")
        )
    env = conditions.environment
    have = effective_ids(rows) if env else covered_ids(rows)
    word = f"effective in environment {env}" if env else "covered"
    missing = [t for t in conditions.require if t not in have]
    if missing:
        return Outcome("require", False, f"require: not {word}: {', '.join(sorted(missing))}")
    return Outcome("require", True, f"require: all {len(conditions.require)} {word}")


def _no_loss(rows: Sequence[Row], conditions: Conditions, baseline: Baseline | None) -> Outcome:
    if baseline is None:
        raise InvalidInput("--no-loss needs --baseline FILE", Location(field="--no-loss"))
    env = conditions.environment
    if env and baseline.effective is None:
        raise InvalidInput(
            "the baseline has no effective techniques (saved without --env); save one with "
            f"--env {env}",
            Location(field="--baseline"),
        )
    before = set(baseline.effective or ()) if env else set(baseline.covered)
    now = effective_ids(rows) if env else covered_ids(rows)
    lost = sorted(before - now)
    word = "effective" if env else "covered"
    if lost:
        n = f"{len(lost)} technique{'s' if len(lost) != 1 else ''}"
        return Outcome("no-loss", False, f"no-loss: {n} no longer {word}: {', '.join(lost)}")
    return Outcome("no-loss", True, f"no-loss: all {len(before)} {word} in the baseline still are")


def make_baseline(rows: Sequence[Row], context: Context, *, kbmap: str, at: datetime) -> Baseline:
    """The baseline of these rows; effective ids and scores only under an environment."""
    env = context.environment
    return Baseline(
        kbmap=kbmap,
        at=at,
        domain=context.domain,
        version=context.version,
        catalogs=list(context.catalogs),
        environment=env,
        filters=context.filters,
        covered=sorted(covered_ids(rows)),
        effective=sorted(effective_ids(rows)) if env else None,
        scores={r.id: r.score for r in sorted(rows, key=lambda r: r.id) if r.score > 0},
        effective_scores=(
            {r.id: r.effective_score or 0.0 for r in rows if (r.effective_score or 0) > 0}
            if env
            else None
        ),
    )


def differences(baseline: Baseline, context: Context) -> list[str]:
    """What the baseline was made on that this run is not: each a warning, never a refusal
    (techniques are compared by id)."""
    pairs = (
        ("release", f"{baseline.domain} {baseline.version}", f"{context.domain} {context.version}"),
        ("catalogs", ", ".join(sorted(baseline.catalogs)), ", ".join(sorted(context.catalogs))),
        ("environment", baseline.environment or "none", context.environment or "none"),
        ("filters", _filters(baseline.filters), _filters(context.filters)),
    )
    return [
        f"the baseline was made on {what} {was!r}, this run is on {now!r}"
        for what, was, now in pairs
        if was != now
    ]


def _filters(f: Filters) -> str:
    parts = [f"{k}={','.join(v)}" for k, v in f.model_dump().items() if v]
    return "; ".join(parts) or "none"


def dump_baseline(baseline: Baseline) -> bytes:
    return orjson.dumps(baseline.model_dump(mode="json"), option=orjson.OPT_INDENT_2) + b"\n"


def load_baseline(data: bytes, *, name: str, max_depth: int) -> Baseline:
    """A baseline file read back: JSON within the depth limit, fields as the schema says,
    technique ids well formed; any problem is InvalidInput naming the file and the field."""
    value = loads_json(data, name=name)
    if not json_depth_ok(value, max_depth):
        raise InvalidInput(f"JSON nested deeper than {max_depth} levels", Location(file=name))
    if not isinstance(value, dict) or value.get("format") != BASELINE_FORMAT:
        raise InvalidInput(
            f'not a kbmap coverage baseline (no "format": "{BASELINE_FORMAT}")',
            Location(file=name),
        )
    try:
        baseline = Baseline.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InvalidInput(err["msg"], Location(file=name, field=where)) from exc
    _check_ids(baseline, name)
    return baseline


def _check_ids(baseline: Baseline, name: str) -> None:
    for field in ("covered", "effective"):
        for i, tid in enumerate(getattr(baseline, field) or ()):
            if not TECHNIQUE_ID.match(tid):
                raise InvalidInput(
                    f"not a technique id: {tid!r}", Location(file=name, field=f"{field}.{i}")
                )
