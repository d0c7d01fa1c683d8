"""Bounded readers: TOML depth is measured before tomllib (which recurses) ever sees the text."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from app.core.bounded_yaml import load_yaml_documents
from app.core.errors import InvalidInput
from app.core.limits import toml_too_deep


def _depth(value: Any) -> int:
    """Nesting of a parsed document, measured on tomllib's own result (another route)."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize(
    "make",
    [
        lambda n: "a = " + "[" * n + "]" * n,
        lambda n: "a = " + "{b = " * n + "1" + "}" * n,
        lambda n: ".".join(["k"] * n) + " = 1",
        lambda n: "[" + ".".join(["t"] * n) + "]\nx = 1",
    ],
    ids=["arrays", "inline-tables", "dotted-keys", "table-header"],
)
def test_depth_bound_matches_what_tomllib_builds(make: Any) -> None:
    # the document's own nesting, minus the table that holds everything, is what is counted
    for n in (5, 20):
        text = make(n)
        depth = _depth(tomllib.loads(text)) - 1
        assert toml_too_deep(text, depth) is None
        assert toml_too_deep(text, depth - 1) == 1


def test_brackets_in_strings_and_comments_do_not_count() -> None:
    text = (
        'q = "[[[[{{{{ a.b.c.d"\n'
        "r = '[[[[[[[['\n"
        's = """\n[[[[[[[[[[\n{{{{{{{{{ \\" ]"""\n'
        "t = '''\n[[[[[[[[[[[[[[[\n'''\n"
        "# [[[[[[[[[[[[[[[[[[[[[\n"
        '[rule]\nrule_id = "x"\n'
        "[[rule.threat]]\nframework = 'MITRE ATT&CK'\nversion = 1.5\n"
    )
    tomllib.loads(text)
    assert toml_too_deep(text, 3) is None
    assert toml_too_deep(text, 2) == 12  # [[rule.threat]]: two brackets and a dot


def test_yaml_in_an_undecodable_encoding_names_the_byte() -> None:
    with pytest.raises(InvalidInput, match=r"not utf-8 text \(byte 7\)") as info:
        load_yaml_documents(b"title: \xff\n", name="r.yml", max_aliases=100)
    assert info.value.location is not None and info.value.location.line == 1


@pytest.mark.parametrize("text", ["date: 2021-13-45\n", "a: &x 2021-02-30\nb: *x\n"])
def test_a_scalar_no_value_can_be_built_from_is_invalid_input(text: str) -> None:
    """A Sigma `date` that is no date crashed the import with a bare ValueError."""
    with pytest.raises(InvalidInput) as err:
        load_yaml_documents(text, name="rule.yml", max_aliases=10)
    assert err.value.location is not None and err.value.location.file == "rule.yml"
    assert "invalid YAML value" in str(err.value)
