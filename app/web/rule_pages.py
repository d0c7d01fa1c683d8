"""Pure: a rule, a catalog's rule list and a catalog comparison → what their pages show.

No database here: the routes hand over what the catalog and coverage services answered. Rule ids
are the catalog's own text (sigma UUIDs, `PT-CR-956`, file names with dots), so a rule's link
quotes its id whole (`/` too, as %2F): any id the catalog holds has one link, and it reads back
as the same id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from app.attack.models import TacticRead
from app.catalog.models import MappingRead
from app.catalog.service import RuleListPage, RuleRow
from app.coverage.models import CatalogComparison
from app.web import views

# How each mapping outcome reads on a rule page
OUTCOME_WORDS = {
    "ok": "mapped",
    "remapped": "remapped from a revoked id",
    "deprecated": "a deprecated technique: does not count",
    "unknown": "an id the release does not have",
    "wrong_domain": "a technique of another ATT&CK domain",
    "unparsable": "no technique id could be read",
}


def catalog_href(catalog: str) -> str:
    return f"/catalogs/{quote(catalog, safe='')}"


def rule_href(catalog: str, rule_id: str) -> str:
    """The rule's page; the id is quoted whole, so `.`, `/`, `%`, spaces all round-trip."""
    return f"{catalog_href(catalog)}/rules/{quote(rule_id, safe='')}"


@dataclass(frozen=True)
class MappingView:
    """One technique mapping as the rule page reads it."""

    written: str
    technique: str | None
    outcome: str
    words: str
    remapped_from: str | None  # the id the catalog wrote, when it was followed elsewhere
    tactic: str | None
    tactic_warning: str | None
    note: str
    original: str | None  # before a catalog upgrade rewrote it


def mapping_views(mappings: Sequence[MappingRead]) -> list[MappingView]:
    return [
        MappingView(
            written=m.written,
            technique=m.technique,
            outcome=m.outcome,
            words=OUTCOME_WORDS.get(m.outcome, m.outcome),
            remapped_from=m.written if m.outcome == "remapped" else None,
            tactic=m.tactic,
            tactic_warning=None if m.tactic_ok else (m.note or "the tactic does not fit"),
            note=m.note,
            original=m.original,
        )
        for m in mappings
    ]


def extra_rows(extra: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The format's extra fields as (key, text): lists joined, anything else as its text."""
    rows = []
    for key in sorted(extra):
        value = extra[key]
        if isinstance(value, list | tuple):
            text = ", ".join(str(v) for v in value)
        else:
            text = "" if value is None else str(value)
        rows.append((str(key), text))
    return rows


def log_source_text(ls: Mapping[str, str]) -> str:
    """A log source as `key: value` pairs (sigma's product/service/category, …)."""
    return ", ".join(f"{k}: {v}" for k, v in ls.items() if v)


# ---- the rule list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TechniqueTag:
    """A mapping as the list shows it: a link to the technique when it counts, else the id as
    written, with its outcome when it is not a plain mapping."""

    label: str
    href: str | None
    outcome: str
    words: str


@dataclass(frozen=True)
class ListLine:
    row: RuleRow
    href: str
    tags: list[TechniqueTag]


def list_lines(page: RuleListPage) -> list[ListLine]:
    """The page's rules with their links made once here (the template would call a macro per
    technique, which costs more than the query)."""

    def tag(m: MappingRead) -> TechniqueTag:
        counts = m.technique is not None and m.outcome in ("ok", "remapped")
        href = views.technique_href(m.technique or "", version=page.version, domain=page.domain)
        return TechniqueTag(
            label=(m.technique or m.written) if counts else m.written,
            href=href if counts else None,
            outcome=m.outcome,
            words=OUTCOME_WORDS.get(m.outcome, m.outcome),
        )

    return [
        ListLine(row, rule_href(page.catalog, row.rule_id), [tag(m) for m in row.mappings])
        for row in page.items
    ]


def list_params(page: RuleListPage) -> dict[str, str | None]:
    """The list's filters, as its pager and links keep them."""
    f = page.filters
    return {
        "technique": f.technique,
        "tactic": f.tactic,
        "outcome": f.outcome,
        "status": f.status,
        "q": f.q,
    }


def diff_href(catalog: str, domain: str, version: str, loaded: Sequence[str]) -> str | None:
    """The release diff that matters to a catalog: from the release before the one it was
    validated against to that one (else from it to the next), with its impact on the catalog;
    None when its domain has one release loaded. `loaded`: the domain's versions, oldest first."""
    if version not in loaded or len(loaded) < 2:
        return None
    i = loaded.index(version)
    older, newer = (loaded[i - 1], version) if i > 0 else (version, loaded[1])
    q = views.query(domain=domain, catalog=[catalog])
    return f"/diff?from={quote(older)}&to={quote(newer)}&{q}"


def list_pager(page: RuleListPage) -> tuple[str | None, str | None]:
    return views.pager(
        catalog_href(page.catalog),
        list_params(page),
        offset=page.offset,
        limit=page.limit,
        total=page.total,
    )


# ---- the comparison --------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    covered: int
    total: int

    @property
    def percent(self) -> float:
        return round(100 * self.covered / self.total, 1) if self.total else 0.0


@dataclass(frozen=True)
class CompareLine:
    """One tactic (or the whole release) as the comparison table reads it."""

    tactic: str
    name: str
    a: Share
    b: Share
    both: int
    only_a: int
    only_b: int
    neither: int


def compare_lines(cmp: CatalogComparison, tactics: Sequence[TacticRead]) -> list[CompareLine]:
    """Per tactic in matrix order, then "all techniques": each side's coverage and the overlap.
    A technique under two tactics counts under each, as the API's `by_tactic` counts it."""
    names = {t.shortname: t.name for t in tactics}
    lines = []
    for r in cmp.by_tactic:
        total = r.both + r.only_a + r.only_b + r.neither
        lines.append(
            CompareLine(
                tactic=r.tactic,
                name=names.get(r.tactic, r.tactic),
                a=Share(r.both + r.only_a, total),
                b=Share(r.both + r.only_b, total),
                both=r.both,
                only_a=r.only_a,
                only_b=r.only_b,
                neither=r.neither,
            )
        )
    return lines


def compare_overall(cmp: CatalogComparison) -> CompareLine:
    both, a, b, n = len(cmp.both), len(cmp.only_a), len(cmp.only_b), len(cmp.neither)
    total = both + a + b + n
    return CompareLine(
        "", "All techniques", Share(both + a, total), Share(both + b, total), both, a, b, n
    )


@dataclass(frozen=True)
class TechniqueLink:
    id: str
    name: str
    href: str


def technique_sets(
    cmp: CatalogComparison, names: Mapping[str, str], *, version: str, domain: str
) -> dict[str, list[TechniqueLink]]:
    """The "only A", "only B" and "both" lists with their links, made once here: the template
    would call a macro per technique, hundreds of times."""
    q = views.query(version=version, domain=domain)
    return {
        key: [TechniqueLink(t, names.get(t, ""), f"/techniques/{t}?{q}") for t in ids]
        for key, ids in (("only_a", cmp.only_a), ("only_b", cmp.only_b), ("both", cmp.both))
    }
