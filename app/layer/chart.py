"""Pure: a scope's coverage history → an SVG trend chart (covered, and effective in an environment).

A step line per count, spaced by time, not by point; each line is labelled at its right end
("covered 398"), so nobody hunts for a legend. Every point is a dot whose tooltip (`<title>`) says
when, what, who and how many; a point where a count dropped is a red dot. The colours are the
matrix's: outside an environment covered is the coverage layer's full-score green; in one,
effective is the effective state's green and covered (rules exist) the purple of a rule that has
rules but no telemetry, as the environment page paints them. Lives in `app.layer` (not
`app.history`) because that palette does, and history sits below layers. All text is escaped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

from app.history.models import Cause, CoverageHistory, HistoryPoint, HistoryScope
from app.layer.kinds.coverage import COVERAGE_GRADIENT
from app.layer.kinds.effective import STATES
from app.layer.render import FONT

COVERED = COVERAGE_GRADIENT[-1]  # a fully covered cell of the matrix
EFFECTIVE = STATES["effective"][0]
HAS_RULES = STATES["rule_without_telemetry"][0]  # covered in an environment: rules exist
LOSS = STATES["blind"][0]
WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 140, 36, 44
LABEL_GAP = 14  # least vertical distance between the two end labels
_BAD_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Series:
    """One line: its label, colour and the count at each point (None: not counted)."""

    label: str
    color: str
    counts: list[int]


def trend_svg(history: CoverageHistory) -> bytes:
    """The chart as standalone SVG bytes (no XML declaration, so it can also sit inline in HTML)."""
    if not history.points:
        return _empty(history.scope).encode()
    return _chart(history).encode()


def scope_words(scope: HistoryScope) -> str:
    """How the chart's title names the scope ("catalog sigma", "all catalogs, enterprise")."""
    if scope.catalog:
        words = f"catalog {scope.catalog}"
    elif scope.environment:
        words = f"environment {scope.environment}"
    else:
        words = f"all catalogs, {scope.domain}"
    filters = [*scope.tactics, *scope.platforms]
    return words + (f" ({', '.join(filters)})" if filters else "")


def _text(value: str) -> str:
    return escape(_BAD_XML.sub("", value), {'"': "&quot;", "'": "&apos;"})


def _svg_open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="{FONT}" role="img">'
        f"<title>{_text(title)}</title>"
    )


def _empty(scope: HistoryScope) -> str:
    title = f"Coverage history of {scope_words(scope)}: no history yet"
    return (
        _svg_open(360, 60, title)
        + '<rect width="360" height="60" fill="#ffffff" stroke="#d0d7de"/>'
        + '<text x="180" y="35" font-size="14" fill="#59636e" text-anchor="middle">'
        + "no history yet</text></svg>"
    )


def _series(points: Sequence[HistoryPoint]) -> list[Series]:
    if any(p.effective is not None for p in points):
        return [
            Series("covered", HAS_RULES, [p.covered for p in points]),
            Series("effective", EFFECTIVE, [p.effective or 0 for p in points]),
        ]
    return [Series("covered", COVERED, [p.covered for p in points])]


class _Axes:
    """Time → x and count → y inside the plot area."""

    def __init__(self, times: Sequence[datetime], top: int) -> None:
        self.first, self.last = times[0], times[-1]
        self.span = (self.last - self.first).total_seconds()
        self.step = nice_step(top)
        self.ymax = max(self.step, math.ceil(top / self.step) * self.step)

    def x(self, at: datetime) -> float:
        width = WIDTH - LEFT - RIGHT
        if self.span <= 0:
            return LEFT + width / 2
        return LEFT + width * (at - self.first).total_seconds() / self.span

    def y(self, count: int) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - count / self.ymax)


def nice_step(top: int) -> int:
    """A tick step of 1, 2 or 5 × 10ⁿ giving four or five ticks from 0 to `top`."""
    raw = top / 5
    if raw <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(raw)))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _chart(history: CoverageHistory) -> str:
    points = history.points
    times = [_aware(p.at) for p in points]
    series = _series(points)
    axes = _Axes(times, max(max(s.counts) for s in series))
    title = f"Coverage history of {scope_words(history.scope)}"
    out = [
        _svg_open(WIDTH, HEIGHT, title),
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="20" font-size="13" fill="#1f2328">{_text(title)}</text>',
        *_y_axis(axes),
        *_x_axis(axes, times),
    ]
    for s in series:
        out += _line(s, axes, times)
    for s in series:
        out += _dots(s, axes, times, points)
    out += _end_labels(series, axes, times[-1])
    out.append("</svg>")
    return "".join(out)


def _y_axis(axes: _Axes) -> list[str]:
    out = [
        f'<text x="{LEFT - 8}" y="{TOP - 8}" font-size="10" fill="#59636e" '
        'text-anchor="end">techniques</text>'
    ]
    for tick in range(0, axes.ymax + 1, axes.step):
        y = axes.y(tick)
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{"#8c959f" if tick == 0 else "#eaeef2"}" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" fill="#59636e" '
            f'text-anchor="end">{tick}</text>'
        )
    return out


def date_ticks(times: Sequence[datetime]) -> list[tuple[datetime, str]]:
    """The first and last times, labelled, and three between them when the span covers at
    least four days (closer ones would crowd the labels); dates, with the time under two days."""
    first, last = times[0], times[-1]
    span = last - first
    fmt = "%Y-%m-%d" if span >= timedelta(days=2) else "%Y-%m-%d %H:%M"
    if span <= timedelta(0):
        return [(first, first.strftime(fmt))]
    between = [first + span * k / 4 for k in (1, 2, 3)] if span >= timedelta(days=4) else []
    return [(t, t.strftime(fmt)) for t in (first, *between, last)]


def _x_axis(axes: _Axes, times: Sequence[datetime]) -> list[str]:
    ticks = date_ticks(times)
    base = HEIGHT - BOTTOM
    out = []
    for i, (t, label) in enumerate(ticks):
        x = axes.x(t)
        anchor = "middle" if len(ticks) == 1 or 0 < i < len(ticks) - 1 else ("start", "end")[i > 0]
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 5}" stroke="#8c959f"/>'
            f'<text x="{x:.1f}" y="{base + 18}" font-size="11" fill="#59636e" '
            f'text-anchor="{anchor}">{_text(label)}</text>'
        )
    return out


def _line(s: Series, axes: _Axes, times: Sequence[datetime]) -> list[str]:
    """A step line: each count holds until the next point, then moves."""
    parts = [f"M{axes.x(times[0]):.1f},{axes.y(s.counts[0]):.1f}"]
    for t, n in zip(times[1:], s.counts[1:], strict=True):
        parts.append(f"H{axes.x(t):.1f}V{axes.y(n):.1f}")
    return [
        f'<path class="line {s.label}" d="{"".join(parts)}" fill="none" stroke="{s.color}" '
        'stroke-width="2"/>'
    ]


def _dots(
    s: Series, axes: _Axes, times: Sequence[datetime], points: Sequence[HistoryPoint]
) -> list[str]:
    out = []
    for i, (t, n) in enumerate(zip(times, s.counts, strict=True)):
        before = s.counts[i - 1] if i else None
        lost = before is not None and n < before
        out.append(
            f'<circle class="point {s.label}{" loss" if lost else ""}" cx="{axes.x(t):.1f}" '
            f'cy="{axes.y(n):.1f}" r="{4.5 if lost else 3.5}" fill="{LOSS if lost else s.color}" '
            f'stroke="#ffffff" stroke-width="1"><title>{_text(tooltip(s.label, points[i], before))}'
            "</title></circle>"
        )
    return out


def tooltip(label: str, point: HistoryPoint, before: int | None) -> str:
    """What a dot says: when, which change, who, on what, and the count with its move."""
    count = point.covered if label == "covered" else point.effective or 0
    moved = f" ({count - before:+d})" if before is not None and count != before else ""
    return " · ".join(
        [
            _aware(point.at).strftime("%Y-%m-%d %H:%M UTC"),
            point.cause.cause.replace("_", " "),
            f"by {point.cause.actor}" if point.cause.actor else "by a script",
            *_touched(point.cause),
            f"{label} {count}{moved}",
        ]
    )


def _touched(cause: Cause) -> list[str]:
    return [
        f"{what} {name}"
        for what, name in (
            ("catalog", cause.catalog),
            ("environment", cause.environment),
            ("release", cause.release),
        )
        if name
    ]


def _end_labels(series: Sequence[Series], axes: _Axes, last: datetime) -> list[str]:
    """Each line's name and last count at its right end, kept apart when the lines meet."""
    x = axes.x(last) + 8
    out, floor = [], -math.inf
    for s in series:  # covered first: effective is never above it
        y = max(axes.y(s.counts[-1]) + 4, floor)
        floor = y + LABEL_GAP
        out.append(
            f'<text class="label {s.label}" x="{x:.1f}" y="{y:.1f}" font-size="12" '
            f'font-weight="600" fill="{s.color}">{_text(f"{s.label} {s.counts[-1]}")}</text>'
        )
    return out
