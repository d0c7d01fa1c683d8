"""The search index: every searchable thing of one release, or of one catalog, in memory, built
once and cached under the release's or the catalog's key (`core.cache`), so a query scans
folded text in C instead of asking the database.

Each part keeps the distinct words of its labels (ids, names, aliases, titles) and of its
descriptions in two long strings, each word with the entries holding it. A query word's entries
are found with `str.find` over those words (a fifth of the text), jumping to the next word after
each hit; only the entries holding every query word are scored (`ranking`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text as sql_text
from sqlmodel import Session

from app.attack import service as attack_service
from app.catalog import service as catalog_service
from app.core.cache import CacheSpec, cached
from app.search import ranking
from app.search.models import ATTACK_KINDS
from app.search.ranking import Entry, Query, fold

if TYPE_CHECKING:
    from app.attack.release_rows import TextObject
    from app.attack.tables import Release
    from app.catalog.tables import Catalog

Scored = tuple[tuple[object, ...], Entry, tuple[int, str, int]]
_SEP = "\x00"  # between words: a query holds no control character, so never spans two
_STORED_KIND = {stored: kind for kind, stored in ATTACK_KINDS.items()}


@dataclass(frozen=True)
class _Words:
    """Every distinct whitespace-separated word of the entries' texts, one after another, with
    the entries holding each: a query word (never holding a space) is in an entry's text exactly
    when it is in one of its words, and the words are far fewer than the text's characters."""

    blob: str
    starts: tuple[int, ...]  # one per word, then the blob's length
    postings: tuple[list[int], ...]  # per word, the entries holding it (never changed)

    @classmethod
    def of(cls, texts: Iterable[str]) -> _Words:
        where: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            for word in text.split():
                found = where.get(word)
                if found is None:
                    where[word] = [i]
                elif found[-1] != i:  # entries come in order: one posting per entry
                    found.append(i)
        words = sorted(where)
        starts, at = [], 0
        for w in words:
            starts.append(at)
            at += len(w) + 1
        blob = _SEP.join(words) + _SEP
        return cls(blob, (*starts, at), tuple(where[w] for w in words))

    def holding(self, word: str) -> set[int]:
        """The entries whose text holds `word`: one find per word of the index holding it."""
        found: set[int] = set()
        blob, starts, postings = self.blob, self.starts, self.postings
        at = blob.find(word)
        while at != -1:
            k = bisect_right(starts, at) - 1
            found.update(postings[k])
            at = blob.find(word, starts[k + 1])
        return found


class SearchIndex:
    """The searchable entries of one part (a release, a catalog), ready for many queries."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = tuple(entries)
        self.kinds = frozenset(e.kind for e in self.entries)
        self._labels = _Words.of(" ".join([e.id_key, *(t for _, t in e.labels)]) for e in entries)
        self._descriptions = _Words.of(e.description for e in entries)

    def find(self, q: Query, kinds: Collection[str], kind_order: dict[str, int]) -> list[Scored]:
        """Every entry of `kinds` matching the query, scored, with its sort key (unsorted)."""
        if not self.kinds & set(kinds):
            return []
        in_labels: set[int] | None = None
        anywhere: set[int] | None = None
        for word in q.words:
            labelled = self._labels.holding(word)
            described = self._descriptions.holding(word)
            in_labels = labelled if in_labels is None else in_labels & labelled
            both = labelled | described
            anywhere = both if anywhere is None else anywhere & both
        out: list[Scored] = []
        for i in anywhere or ():
            entry = self.entries[i]
            if entry.kind not in kinds:
                continue
            found = ranking.score(entry, q, in_labels=i in (in_labels or ()))
            if found is not None:
                out.append((ranking.sort_key(entry, found, kind_order[entry.kind]), entry, found))
        return out


# ---- building, cached ----------------------------------------------------------------------

RELEASE_INDEX: CacheSpec[SearchIndex] = CacheSpec("search.release_index", size=8)
CATALOG_INDEX: CacheSpec[SearchIndex] = CacheSpec("search.catalog_index", size=64)
CATALOG_SET: CacheSpec[list[SearchIndex]] = CacheSpec("search.catalog_set", size=8)


def release_index(session: Session, release: Release) -> SearchIndex:
    """The release's ATT&CK objects, indexed once per loaded release."""
    return cached(
        session,
        RELEASE_INDEX,
        attack_service.release_key(release),
        lambda: SearchIndex(_attack_entries(session, release)),
    )


def _attack_entries(session: Session, release: Release) -> list[Entry]:
    rows = attack_service.text_objects(
        session, release_id=release.id or 0, kinds=list(ATTACK_KINDS.values())
    )
    names = {r.attack_id: r.name for r in rows if r.kind == "technique" and r.attack_id}
    return [_attack_entry(r, names) for r in rows]


def _attack_entry(row: TextObject, technique_names: dict[str, str]) -> Entry:
    shown_id = row.attack_id or row.stix_id
    labels = [("name", fold(row.name))]
    labels += [
        ("alias", a) for a in dict.fromkeys(fold(x) for x in row.aliases) if a != labels[0][1]
    ]
    shown_name = row.name
    if row.kind == "technique" and row.attack_id and "." in row.attack_id:
        parent = technique_names.get(row.attack_id.split(".")[0])
        labels += [("parent", fold(parent))] if parent else []
        shown_name = f"{parent}: {row.name}" if parent else row.name  # as ATT&CK names it
    return Entry(
        kind=_STORED_KIND[row.kind],
        id=shown_id,
        name=shown_name,
        id_key=fold(shown_id),
        labels=tuple(labels),
        description=fold(row.description),
        live=row.live,
    )


def catalog_indexes(session: Session) -> list[SearchIndex]:
    """One index of every catalog's rules (each cached under its catalog key), and one of the
    catalogs themselves; the list cached under every catalog's state, read in one plain
    statement (reading the catalog rows decodes their import reports: a query's whole time)."""
    state = tuple(tuple(r) for r in session.execute(sql_text(catalog_service.CATALOGS_STATE_SQL)))
    return cached(session, CATALOG_SET, tuple(sorted(state)), lambda: _catalog_indexes(session))


def _catalog_indexes(session: Session) -> list[SearchIndex]:
    rows = catalog_service.catalogs_by_id(session, catalog_service.catalog_ids(session, None))
    keys = tuple(catalog_service.catalog_key(c) for c in rows)
    out = [_rules_index(session, c, key) for key, c in zip(keys, rows, strict=True)]
    listed = [_catalog_entry(c.name, c.vendor, c.product) for c in rows]
    return [*out, SearchIndex(listed)]


def _rules_index(session: Session, catalog: Catalog, key: tuple[int, str, int]) -> SearchIndex:
    return cached(session, CATALOG_INDEX, key, lambda: SearchIndex(_rule_entries(session, catalog)))


def _rule_entries(session: Session, catalog: Catalog) -> list[Entry]:
    rows = catalog_service.rule_texts(session, catalog_id=catalog.id or 0)
    return [_rule_entry(catalog.name, r) for r in rows]


def _rule_entry(catalog: str, r: catalog_service.RuleText) -> Entry:
    labels = [("title", fold(r.title)), ("name", fold(r.name))]
    return Entry(
        kind="rule",
        id=r.rule_id,
        name=r.title or r.name or r.rule_id,
        id_key=fold(r.rule_id),
        labels=tuple((f, t) for f, t in labels if t),
        description=fold(r.description),
        catalog=catalog,
    )


def _catalog_entry(name: str, vendor: str | None, product: str | None) -> Entry:
    about = " ".join(x for x in (vendor, product) if x)
    return Entry(
        kind="catalog",
        id=name,
        name=name,
        id_key=fold(name),
        labels=(("name", fold(name)),),
        description=fold(about),
    )
