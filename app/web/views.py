"""Pure: service results → what the pages show (matrix columns, cell colours, safe ATT&CK text).

Nothing here queries; the routes hand over the rows the coverage and ATT&CK services computed,
so a page never disagrees with the API. Cell colours come from the coverage layer's own gradient
(`app.layer`), so the HTML matrix, the Navigator layer and the SVG paint a score alike.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup, escape

from app.attack import text as attack_text
from app.attack.models import TacticRead
from app.attack.service import TechniqueIndex
from app.attack.text import Citations, Token
from app.coverage.models import TechniqueCoverage
from app.environment.models import EnvironmentRead
from app.history.models import CoverageHistory, HistoryPoint, HistoryScope
from app.layer.chart import scope_words as scope_words  # the page's title names it alike
from app.layer.chart import trend_svg
from app.layer.kinds.coverage import COVERAGE_GRADIENT, WHITE
from app.layer.kinds.effective import STATES as STATE_LEGEND
from app.layer.navigator import Gradient
from app.layer.render import gradient_color
from app.layer.render import ink as contrast_ink
from app.technique_page.text import by_catalog as by_catalog  # shared with the CLI
from app.technique_page.text import by_technique as by_technique
from app.technique_page.text import rule_line as rule_line

ATTACK_SITE = "https://attack.mitre.org"
_GRADIENT = Gradient(colors=COVERAGE_GRADIENT, minValue=0, maxValue=100)

# ATT&CK id prefix → the attack.mitre.org folder of that kind (techniques are served by kbmap)
_SITE_FOLDER = {
    "TA": "tactics",
    "G": "groups",
    "S": "software",
    "C": "campaigns",
    "M": "mitigations",
    "DS": "datasources",
    "DC": "datacomponents",
    "DET": "detectionstrategies",
    "AN": "analytics",
    "A": "assets",
}
_ID = re.compile(r"^(TA|DET|DS|DC|AN|[GSCMA])\d{4}$")
_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
# an object's page on attack.mitre.org, as ATT&CK's texts link it (…/groups/G0016)
_SITE_OBJECT = re.compile(r"^https://attack\.mitre\.org/[a-z]+/((?:DET|DS|DC|AN|[GSCM])\d{4})/?$")


# ---- colours -----------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def score_fill(score: float) -> str:
    """Background of a cell: white when uncovered, else the coverage layer's gradient.

    Cached: scores take few distinct values, and the matrix asks for about a thousand cells.
    """
    return gradient_color(_GRADIENT, score) if score > 0 else WHITE


@lru_cache(maxsize=1024)
def ink(fill: str) -> str:
    """Black or white text, whichever contrasts more with `fill` (#rrggbb) by WCAG 2.x, as the
    SVG picks it: text on every tile reaches AA (≥ 4.5:1)."""
    return contrast_ink(fill)


# ---- links -----------------------------------------------------------------------------------


def query(**params: str | Sequence[str] | None) -> str:
    """A query string from the parameters that are set (lists repeat), for bookmarkable links."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None or value == "":
            continue
        if isinstance(value, str):
            pairs.append((key, value))
        else:
            pairs.extend((key, v) for v in value if v)
    return urlencode(pairs)


def pager(
    path: str,
    params: Mapping[str, str | Sequence[str] | None],
    *,
    offset: int,
    limit: int,
    total: int,
) -> tuple[str | None, str | None]:
    """Links to the previous and next page of a list view, keeping its filters (None at an end)."""

    def link(to: int) -> str:
        return f"{path}?{query(**params, limit=str(limit), offset=str(to))}"

    prev = link(max(0, offset - limit)) if offset > 0 else None
    nxt = link(offset + limit) if offset + limit < total else None
    return prev, nxt


def gap_filters(
    catalog: list[str] | None,
    platform: list[str] | None,
    groups: list[str] | None,
    environment: str | None,
    collected: list[str] | None,
    min_score: float,
) -> dict[str, Any]:
    """The gap page's filters as its form shows them and its pager keeps them."""
    return {
        "catalog": catalog or [],
        "platform": platform or [],
        "groups": groups or [],
        "environment": environment,
        "collected": collected or [],
        "min_score": f"{min_score:g}" if min_score else None,
    }


def technique_href(attack_id: str, *, version: str | None = None, domain: str | None = None) -> str:
    q = query(version=version, domain=domain)
    return f"/techniques/{quote(attack_id)}" + (f"?{q}" if q else "")


# ATT&CK id prefix → kbmap's page folder of that kind (issue 18: every link stays inside kbmap)
PAGE_FOLDER = {
    "G": "groups",
    "S": "software",
    "C": "campaigns",
    "M": "mitigations",
    "DS": "data-sources",
    "DC": "data-components",
    "DET": "detection-strategies",
    "AN": "analytics",
}


def attack_href(
    attack_id: str | None, *, version: str | None = None, domain: str | None = None
) -> str | None:
    """kbmap's page for an ATT&CK id; attack.mitre.org for kinds kbmap has no page of (tactics,
    assets); None for anything that is not an ATT&CK id."""
    if not attack_id:
        return None
    if _TECHNIQUE.match(attack_id):
        return technique_href(attack_id, version=version, domain=domain)
    m = _ID.match(attack_id)
    if m is None:
        return None
    folder = PAGE_FOLDER.get(m.group(1))
    if folder is None:
        return site_href(attack_id)
    q = query(version=version, domain=domain)
    return f"/{folder}/{attack_id}" + (f"?{q}" if q else "")


def site_href(attack_id: str | None) -> str | None:
    """The object's page on attack.mitre.org: the secondary "on attack.mitre.org" link."""
    if not attack_id:
        return None
    if _TECHNIQUE.match(attack_id):
        return f"{ATTACK_SITE}/techniques/{attack_id.replace('.', '/')}/"
    m = _ID.match(attack_id)
    return None if m is None else f"{ATTACK_SITE}/{_SITE_FOLDER[m.group(1)]}/{attack_id}/"


# ---- ATT&CK text -----------------------------------------------------------------------------


@dataclass
class TextRenderer:
    """Renders ATT&CK's markdown-ish text as safe HTML for one page.

    Everything is escaped first; only a few known constructs become markup: paragraphs, bullet
    lists, `code`, **bold**, links (technique links stay inside kbmap) and citation markers, which
    become small numbered references listed once at the end of the page. The reading of the text
    and the numbering are `app.attack.text`'s, shared with `kbmap technique`.
    """

    version: str | None = None
    domain: str | None = None
    refs: Citations = field(default_factory=Citations)
    # names → URLs of the cited sources (the release's STIX external_references), asked once
    # when the page lists its sources, after every text was rendered
    source_urls: Callable[[list[str]], Mapping[str, str]] | None = None

    @property
    def citations(self) -> list[str]:
        return self.refs.names

    def sources(self) -> list[tuple[int, str, str | None]]:
        """The cited sources in number order, each with its URL when the release gives one."""
        names = self.refs.names
        urls = self.source_urls(names) if self.source_urls and names else {}
        return [(n, name, urls.get(name)) for n, name in enumerate(names, 1)]

    def __call__(self, text: str | None) -> Markup:
        return Markup("").join(self._block(p) for p in attack_text.paragraphs(text))

    def inline(self, text: str | None) -> Markup:
        """One line of text without paragraph wrapping (table cells)."""
        return self._inline((text or "").strip())

    def _block(self, para: str) -> Markup:
        items = attack_text.bullet_items(para)
        if items is not None:
            lis = Markup("").join(Markup("<li>%s</li>") % self._inline(i) for i in items)
            return Markup("<ul>%s</ul>") % lis
        body = Markup("<br>").join(self._inline(line.strip()) for line in para.splitlines())
        return Markup("<p>%s</p>") % body

    def _inline(self, text: str) -> Markup:
        return Markup("").join(
            escape(piece) if isinstance(piece, str) else self._token(piece)
            for piece in attack_text.tokens(text)
        )

    def _token(self, t: Token) -> Markup:
        if t.kind == "cite":
            n = self.refs.number(t.text)
            return Markup('<sup class="cite" title="%s"><a href="#cite-%d">[%d]</a></sup>') % (
                t.text,
                n,
                n,
            )
        if t.kind == "link":
            return self._link(t.text, t.url)
        if t.kind == "code":
            return Markup("<code>%s</code>") % t.text
        if t.kind == "bold":
            return Markup("<strong>%s</strong>") % t.text
        return Markup("<br>")

    def _link(self, label: str, url: str) -> Markup:
        tid = attack_text.site_technique(url)
        if tid:
            href = technique_href(tid, version=self.version, domain=self.domain)
            return Markup('<a href="%s">%s</a>') % (href, label)
        m = _SITE_OBJECT.match(url)  # a group, software, … on attack.mitre.org: its kbmap page
        inside = attack_href(m.group(1), version=self.version, domain=self.domain) if m else None
        if inside and inside.startswith("/"):
            return Markup('<a href="%s">%s</a>') % (inside, label)
        if url.startswith(("https://", "http://")):
            return Markup('<a class="external" href="%s" rel="noopener noreferrer">%s</a>') % (
                url,
                label,
            )
        return escape(label)


# ---- the matrix --------------------------------------------------------------------------------


@dataclass
class MatrixCell:
    """A technique under one tactic: its score there, colours, and sub-techniques (parents only).

    `row` is None for a context cell: a parent shown only because some of its sub-techniques are
    in scope while it is not (a group that uses T1550.001 but not T1550 itself).
    """

    id: str
    name: str
    tactic: str
    html_id: str
    href: str
    row: TechniqueCoverage | None
    score: float = 0.0
    fill: str = WHITE
    ink: str = "#000000"
    subs: list[MatrixCell] = field(default_factory=list)
    title: str = ""  # the hover text
    state: str | None = None  # in an environment: its effective-coverage state

    @property
    def covered(self) -> bool:
        """Scored above 0; in an environment, effective."""
        return self.state == "effective" if self.state else self.score > 0

    @property
    def subs_covered(self) -> int:
        return sum(1 for s in self.subs if s.covered)

    @property
    def expanded(self) -> bool:
        """Its sub-techniques shown open even in a whole-release view: the parent is only
        context (they are why it is drawn). A threat-scoped view opens every parent (the page
        says so); elsewhere the badge's marks show each sub-technique's state folded."""
        return bool(self.subs) and self.row is None


@dataclass
class MatrixColumn:
    """One tactic; its counts take techniques and sub-techniques in scope (not context cells),
    as the page's summary does, so a threat filter that keeps mostly sub-techniques still counts."""

    tactic: TacticRead
    cells: list[MatrixCell]

    def _in_scope(self) -> Iterable[MatrixCell]:
        for c in self.cells:
            if c.row is not None:
                yield c
            yield from c.subs

    @property
    def covered(self) -> int:
        return sum(1 for c in self._in_scope() if c.covered)

    @property
    def total(self) -> int:
        return sum(1 for _ in self._in_scope())


def _tactic_score(row: TechniqueCoverage, tactic: str) -> float:
    """The score under one tactic: differs from the overall one only for pinned mappings."""
    return row.tactic_scores.get(tactic, row.score) if row.tactic_scores else row.score


class _Ids:
    """HTML ids: `cell-T1059-001` where a technique first appears, then `cell-T1059-001--<tactic>`
    in the other tactic columns, so ids stay unique and the first one is predictable."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, tid: str, tactic: str) -> str:
        base = "cell-" + tid.replace(".", "-")
        if base not in self.seen:
            self.seen.add(base)
            return base
        return f"{base}--{tactic}"


def matrix_columns(
    tactics: Sequence[TacticRead],
    rows: Sequence[TechniqueCoverage],
    index: TechniqueIndex,
    *,
    version: str,
    domain: str,
) -> list[MatrixColumn]:
    """Tactic columns in matrix order; parents by name, each with its sub-techniques by id.

    The release's index names the parents that are out of scope (context cells). Links are
    made here, once per cell, because the template loops over about a thousand cells.
    """
    by_id = {r.id: r for r in rows}
    ids = _Ids()
    link = f"?{query(version=version, domain=domain)}"

    def cell(tid: str, tactic: str) -> MatrixCell:
        row = by_id.get(tid)
        if row is not None and tactic not in row.tactics:
            row = None  # a parent drawn for a sub-technique's tactic that it lacks itself
        info = index.techniques.get(tid)
        c = MatrixCell(
            id=tid,
            name=row.name if row else (info.name if info else tid),
            tactic=tactic,
            html_id=ids(tid, tactic),
            href=f"/techniques/{tid}{link}",
            row=row,
        )
        if row is not None:
            c.score = _tactic_score(row, tactic)
            c.fill = score_fill(c.score)
            c.ink = ink(c.fill)
            c.title = f"score {c.score}, {row.rules} rule(s)"
        return c

    by_tactic: dict[str, list[TechniqueCoverage]] = defaultdict(list)
    for r in rows:
        for tac in r.tactics:
            by_tactic[tac].append(r)
    columns = []
    for t in tactics:
        here = by_tactic.get(t.shortname, [])
        children: dict[str, list[str]] = defaultdict(list)
        parents: set[str] = set()
        for r in here:
            if r.parent:
                children[r.parent].append(r.id)
                parents.add(r.parent)
            else:
                parents.add(r.id)
        cells = [cell(pid, t.shortname) for pid in parents]
        cells.sort(key=lambda c: (c.name.lower(), c.id))
        for c in cells:
            c.subs = [cell(sid, t.shortname) for sid in sorted(children.get(c.id, ()))]
        columns.append(MatrixColumn(tactic=t, cells=cells))
    return columns


# ---- an environment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StateKey:
    """One line of the five-state legend: the effective layer's colour and words."""

    state: str
    fill: str
    label: str
    count: int


def state_legend(rows: Sequence[TechniqueCoverage]) -> list[StateKey]:
    """The five states in coverage's order, with how many techniques in view are in each."""
    counts: dict[str, int] = dict.fromkeys(STATE_LEGEND, 0)
    for r in rows:
        if r.state is not None:
            counts[r.state] += 1
    return [StateKey(s, fill, label, counts[s]) for s, (fill, label) in STATE_LEGEND.items()]


def effective_columns(columns: list[MatrixColumn], *, environment: str) -> list[MatrixColumn]:
    """The matrix repainted by state: a cell counts (`covered`) when effective, so the column
    counts read "effective of total"; its link opens the technique page in the environment."""
    for col in columns:
        for c in col.cells:
            _paint_state(c, environment)
            for s in c.subs:
                _paint_state(s, environment)
    return columns


def _paint_state(c: MatrixCell, environment: str) -> None:
    c.href += f"&{query(environment=environment)}"
    if c.row is None or c.row.state is None:
        return
    c.state = c.row.state
    c.score = c.row.effective_score or 0.0
    c.fill = STATE_LEGEND[c.state][0]
    c.ink = ink(c.fill)
    fired = f"{c.row.effective_rules or 0} of {c.row.rules} rule(s) fire"
    c.title = f"{c.state.replace('_', ' ')}: {fired}"
    if c.row.missing_log_sources:
        c.title += "; missing " + ", ".join(c.row.missing_log_sources)


@dataclass(frozen=True)
class SystemView:
    """A system as the environment page lists it."""

    name: str
    platforms: list[str]
    collected: list[str]  # data components of its counted log sources
    not_counted: list[str]  # log sources listed but not counted (unavailable, quality 0)


def system_views(env: EnvironmentRead) -> list[SystemView]:
    out = []
    for s in env.systems:
        collected = sorted(
            {dc for ls in s.log_sources if ls.counted for dc in ls.data_components}, key=str.lower
        )
        skipped = [ls.written for ls in s.log_sources if not ls.counted]
        out.append(SystemView(s.name, s.platforms, collected, skipped))
    return out


# ---- the coverage history ----------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryRow:
    """One point of the history table: the point, what it touched, its moves since the last."""

    point: HistoryPoint
    touched: str  # "catalog sigma", "environment lab", "release enterprise 18.1"
    covered_moved: int | None  # None: the first point
    effective_moved: int | None


def history_rows(points: Sequence[HistoryPoint]) -> list[HistoryRow]:
    """The points newest first, each with how far it moved the counts from the point before."""
    rows = []
    for i, p in enumerate(points):
        before = points[i - 1] if i else None
        rows.append(
            HistoryRow(
                point=p,
                touched=", ".join(
                    f"{what} {name}"
                    for what, name in (
                        ("catalog", p.cause.catalog),
                        ("environment", p.cause.environment),
                        ("release", p.cause.release),
                    )
                    if name
                ),
                covered_moved=p.covered - before.covered if before else None,
                effective_moved=_moved(p.effective, before.effective if before else None),
            )
        )
    return rows[::-1]


def _moved(now: int | None, then: int | None) -> int | None:
    return now - then if now is not None and then is not None else None


def signed(n: int | None) -> str:
    """A move as the table shows it: +3, −2, 0; "" for none."""
    if n is None:
        return ""
    return f"+{n}" if n > 0 else (f"−{-n}" if n < 0 else "0")


def last_change(points: Sequence[HistoryPoint]) -> str | None:
    """The `since` that shows the last point's changes: the point before it (None: from the
    beginning, when there is one point or none)."""
    return str(points[-2].cause.snapshot) if len(points) > 1 else None


def history_query(scope: HistoryScope) -> str:
    """The scope as the history routes' query string, for the page's links."""
    return query(
        catalog=scope.catalog,
        environment=scope.environment,
        domain=scope.domain,
        tactic=scope.tactics,
        platform=scope.platforms,
    )


def delta_href(scope: HistoryScope, points: Sequence[HistoryPoint]) -> str | None:
    """The delta layer of the last change (None with fewer than two points)."""
    if len(points) < 2:
        return None
    ends = {"from": str(points[-2].cause.snapshot), "to": str(points[-1].cause.snapshot)}
    where = query(catalog=scope.catalog, environment=scope.environment, domain=scope.domain)
    return f"/api/v1/layers/delta?{where}&{query(**ends)}"


def trend_chart(history: CoverageHistory) -> Markup:
    """The trend chart inline: its text is escaped by the chart itself."""
    return Markup(trend_svg(history).decode())  # escaped by app.layer.chart
