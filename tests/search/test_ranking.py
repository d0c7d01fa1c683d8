"""The ranking alone (pure, no database): tiers, tie-breaks, folding and odd input."""

from __future__ import annotations

import pytest

from app.search import ranking
from app.search.index import SearchIndex
from app.search.ranking import Entry, fold, parse_query

ORDER = {"technique": 0, "group": 1, "rule": 2}


def entry(
    kind: str,
    id: str,
    name: str,
    *,
    aliases: tuple[str, ...] = (),
    parent: str | None = None,
    description: str = "",
    live: bool = True,
) -> Entry:
    labels = [("name", fold(name)), *(("alias", fold(a)) for a in aliases)]
    labels += [("parent", fold(parent))] if parent else []
    return Entry(kind, id, name, fold(id), tuple(labels), fold(description), live)


def ranked(entries: list[Entry], q: str) -> list[tuple[str, str]]:
    query = parse_query(q)
    assert query is not None
    found = SearchIndex(entries).find(query, set(ORDER), ORDER)
    return [(e.id, where) for _key, e, (_p, where, _l) in sorted(found, key=lambda h: h[0])]


TOKEN = entry(
    "technique",
    "T1550.001",
    "Application Access Token",
    parent="Use Alternate Authentication Material",
    description="Adversaries may use stolen application access tokens.",
)
MANIPULATION = entry("technique", "T1134", "Access Token Manipulation")
THEFT = entry(
    "technique", "T1134.001", "Token Impersonation/Theft", parent="Access Token Manipulation"
)
MENTION = entry("technique", "T1078", "Valid Accounts", description="an access token, or a key")
REVOKED = entry("technique", "T1527", "Application Access Token", live=False)
APT29 = entry("group", "G0016", "APT29", aliases=("APT29", "Cozy Bear", "The Dukes"))


def test_an_exact_id_comes_first_even_over_an_exact_name() -> None:
    named = entry("rule", "r1", "T1134")
    assert ranked([named, MANIPULATION], "t1134") == [("T1134", "id"), ("r1", "name")]


def test_a_name_match_comes_before_a_parent_match_and_a_description_match() -> None:
    got = ranked([MENTION, THEFT, REVOKED, TOKEN, MANIPULATION], "access token")
    assert got[:2] == [("T1134", "name"), ("T1550.001", "name")]  # a name starting so first
    assert got[2:] == [("T1134.001", "parent"), ("T1078", "description"), ("T1527", "name")]


def test_revoked_sinks_below_every_live_match_but_keeps_its_exact_id() -> None:
    assert ranked([MENTION, REVOKED], "application access token")[-1] == ("T1527", "name")
    assert ranked([TOKEN, REVOKED], "T1527") == [("T1527", "id")]


def test_aliases_find_the_group_and_an_exact_alias_beats_a_partial_name() -> None:
    cozy = entry("group", "G9999", "Cozy Bear Fan Club")
    assert ranked([cozy, APT29], "cozy bear") == [("G0016", "alias"), ("G9999", "name")]
    assert ranked([APT29], "DUKES") == [("G0016", "alias")]


def test_an_id_prefix_finds_the_sub_techniques_after_the_technique() -> None:
    got = ranked([TOKEN, MANIPULATION, THEFT], "T1134")
    assert got == [("T1134", "id"), ("T1134.001", "id")]


def test_words_match_anywhere_and_whole_words_beat_parts_of_words() -> None:
    whole = entry("rule", "a", "token used for access")
    part = entry("rule", "b", "tokens accessed")
    assert ranked([part, whole], "access token") == [("a", "name"), ("b", "name")]
    q = parse_query("access token")
    assert q is not None
    assert ranking.score(whole, q)[0] > ranking.score(part, q)[0]  # type: ignore[index]


def test_every_word_must_match_somewhere() -> None:
    assert ranked([TOKEN, MANIPULATION, APT29], "access bear") == []
    spread = ranked([TOKEN], "application stolen")  # one word in the name, one in the text
    assert spread == [("T1550.001", "description")]


def test_ties_are_deterministic_whatever_the_input_order() -> None:
    a = entry("rule", "r-b", "Same Title")
    b = entry("rule", "r-a", "Same Title")
    assert ranked([a, b], "same") == ranked([b, a], "same") == [("r-a", "name"), ("r-b", "name")]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Access\tToken  ", "access token"),
        ("Ｔ１５５０．００１", "t1550.001"),  # full-width digits and letters (NFKC)
        ("STRASSE Straße", "strasse strasse"),  # case-folded
        ("ﬁle", "file"),  # a ligature
    ],
)
def test_queries_are_folded(raw: str, expected: str) -> None:
    q = parse_query(raw)
    assert q is not None and q.text == expected


@pytest.mark.parametrize("raw", ["", "   ", "\u3000", "\x00", "\x00\x01 \x7f"])
def test_a_query_without_words_is_none(raw: str) -> None:
    assert parse_query(raw) is None


def test_regex_characters_are_literal() -> None:
    odd = entry("rule", "r", "cmd.exe /c (whoami) [x]* +")
    assert ranked([odd, MANIPULATION], "(whoami) [x]*") == [("r", "name")]
    assert ranked([odd, MANIPULATION], ".*") == []


def test_the_index_finds_what_a_plain_scan_finds() -> None:
    entries = [TOKEN, MANIPULATION, THEFT, MENTION, REVOKED, APT29]
    for q in ("token", "a", "ss", "t1", "cozy", "access token", "stolen key", "zzz"):
        query = parse_query(q)
        assert query is not None
        scan = {e.id for e in entries if ranking.score(e, query) is not None}
        assert {e.id for _k, e, _f in SearchIndex(entries).find(query, set(ORDER), ORDER)} == scan


def test_control_characters_never_reach_the_index() -> None:
    q = parse_query("tok\x00en")
    assert q is not None and q.words == ("token",)
    assert ranked([TOKEN], "\x00token") == [("T1550.001", "name")]
