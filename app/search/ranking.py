"""Pure: how well one thing matches a query, as a score (no database, no index).

Tiers, best first: the exact id; the exact name or alias; the id's prefix (T1550 → T1550.001);
the query as a phrase in a name, alias or title (whole words before parts of words); every word
of it there; a sub-technique by its parent's name; then the same in the description. Revoked and
deprecated things sink below every live match but an exact id. Ties are broken by the shorter
matched text (a closer match), then kind and id, so the order never depends on the input's.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

MAX_WORDS = 12
EXACT_ID = 1000
EXACT_NAME = 900
EXACT_ALIAS = 880
ID_PREFIX = 850
PHRASE_WORDS = 700  # the phrase, as whole words
PHRASE = 640  # the phrase, inside words
ALL_WORDS = 580  # every word, whole
ALL_PARTS = 520  # every word, inside words
LABEL_START = 20  # the field starts with the phrase
ALIAS_LESS = 10  # an alias is a little less than the name
PARENT_LESS = 260  # a sub-technique found by its parent's name
DESCRIPTION_PHRASE = 300
DESCRIPTION_WORDS = 200
SPREAD = 120  # some words in a name, the others in the description
DEAD_LESS = 800  # revoked or deprecated: below the lowest live tier (SPREAD)


def fold(text: str) -> str:
    """The form both sides are compared in: NFKC (full-width digits, ligatures), case-folded,
    whitespace runs as one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True)
class Query:
    """A query as matching reads it: the folded phrase, its distinct words, a whole-word test."""

    text: str
    words: tuple[str, ...]
    whole: tuple[re.Pattern[str], ...] = field(compare=False)
    phrase_whole: re.Pattern[str] = field(compare=False)


def parse_query(raw: str) -> Query | None:
    """The query of `raw`, or None when it has no word (blank, or only spaces). Control
    characters are dropped: the routes refuse them, and the index separates its words by one."""
    text = fold("".join(c for c in raw if c.isprintable() or c.isspace()))
    words = tuple(dict.fromkeys(text.split()))[:MAX_WORDS]
    if not words:
        return None
    return Query(
        text=text,
        words=words,
        whole=tuple(_whole(w) for w in words),
        phrase_whole=_whole(text),
    )


def _whole(words: str) -> re.Pattern[str]:
    """`words` standing alone: no letter or digit right before or after it."""
    return re.compile(rf"(?<![^\W_]){re.escape(words)}(?![^\W_])")


@dataclass(frozen=True, slots=True)
class Entry:
    """One searchable thing, its texts folded once when the index is built."""

    kind: str
    id: str  # as shown
    name: str  # as shown
    id_key: str  # folded
    labels: tuple[tuple[str, str], ...]  # (field, folded text): name or title, aliases, parent
    description: str  # folded
    live: bool = True
    catalog: str | None = None


def label_score(entry: Entry, q: Query) -> tuple[int, str, int] | None:
    """The best match of the query in the entry's id, names, aliases or titles: (score, field,
    length of the matched text), None when some word is in none of them."""
    if q.text == entry.id_key:
        return EXACT_ID, "id", len(entry.id_key)
    best: tuple[int, str, int] | None = None
    if len(q.words) == 1 and entry.id_key.startswith(q.text) and _digit(q.text):
        best = (ID_PREFIX, "id", len(entry.id_key))
    for name, text in entry.labels:
        found = _field_score(name, text, q)
        if found is not None and (best is None or found[0] > best[0]):
            best = (found[0], name, len(text))
    return best


def _digit(text: str) -> bool:
    return any(c.isdigit() for c in text)


def _field_score(name: str, text: str, q: Query) -> tuple[int, str] | None:
    if q.text == text:
        score = EXACT_ALIAS if name == "alias" else EXACT_NAME
    elif q.text in text:
        score = PHRASE_WORDS if q.phrase_whole.search(text) else PHRASE
        score += LABEL_START if text.startswith(q.text) else 0
    elif all(w in text for w in q.words):
        score = ALL_WORDS if all(p.search(text) for p in q.whole) else ALL_PARTS
    else:
        return None
    if name == "alias":
        score -= ALIAS_LESS
    elif name == "parent":
        score -= PARENT_LESS
    return score, name


def description_score(entry: Entry, q: Query) -> int | None:
    """The query in the description: the phrase, or every word; None otherwise."""
    text = entry.description
    if q.text in text:
        return DESCRIPTION_PHRASE
    if all(w in text for w in q.words):
        return DESCRIPTION_WORDS
    return None


def spread_score(entry: Entry, q: Query) -> int | None:
    """Every word somewhere, though neither the labels nor the description hold them all."""
    texts = [t for _, t in entry.labels] + [entry.id_key, entry.description]
    if all(any(w in t for t in texts) for w in q.words):
        return SPREAD
    return None


def score(entry: Entry, q: Query, *, in_labels: bool = True) -> tuple[int, str, int] | None:
    """The entry's score for the query, the field it matched best in, and the length of the
    matched text (the tie-break); None when it does not match. `in_labels=False` says some word
    is in none of the labels (the index knows), which skips looking there."""
    found = label_score(entry, q) if in_labels else None
    if found is None:
        desc = description_score(entry, q)
        if desc is not None:
            found = (desc, "description", len(entry.description))
        else:
            spread = spread_score(entry, q)
            found = None if spread is None else (spread, "description", len(entry.description))
    if found is None:
        return None
    points, where, length = found
    if not entry.live and points < EXACT_ID:
        points -= DEAD_LESS
    return points, where, length


def sort_key(entry: Entry, found: tuple[int, str, int], kind_order: int) -> tuple[object, ...]:
    """Best first: score, then the shorter matched text, then kind, id and catalog."""
    points, _where, length = found
    return (-points, length, kind_order, entry.id_key, entry.catalog or "")
