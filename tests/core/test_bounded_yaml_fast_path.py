"""The lean constructor of anchor-free YAML builds exactly what PyYAML's safe loader builds.

The reference is PyYAML itself (`yaml.load_all` with `yaml.CSafeLoader`, its generic
constructor), on every rule file of the shared Sigma catalogs and on documents made to leave the
fast path (merge keys, other tags, unhashable keys, values PyYAML refuses).
"""

from __future__ import annotations

import tarfile
from typing import Any

import pytest
import yaml

from app.core import bounded_yaml
from app.core.bounded_yaml import load_yaml_documents
from app.core.errors import InvalidInput
from tests.conftest import catalog_file


def _pyyaml(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=yaml.CSafeLoader))


@pytest.mark.parametrize("name", ["sigma-attack18", "sigma"])
@pytest.mark.integration  # reads a whole real release or catalog
def test_every_shared_sigma_file_loads_as_pyyaml_loads_it(name: str) -> None:
    checked = 0
    with tarfile.open(catalog_file(f"{name}-rules.tar.gz")) as tar:
        for member in tar:
            fh = tar.extractfile(member) if member.name.endswith(".yml") else None
            if fh is None:
                continue
            text = fh.read().decode("utf-8")
            ours = load_yaml_documents(text, name=member.name, max_aliases=100)
            assert ours == _pyyaml(text), member.name
            checked += 1
    assert checked > 4000


EDGES = [
    "a: 1\nb: [yes, no, ~, 0x1F, 1_000, 0o17, 1.5e3, .inf, 2024-01-02, 2024-01-02T03:04:05Z]\n",
    "1: one\n2.5: two\ntrue: three\n~: four\n2021-09-02: date key\n",
    "dup: 1\ndup: 2\n",
    "base: {x: 1}\nmerged:\n  <<: {x: 1, y: 2}\n  y: 3\n",
    "=: value key\n",
    "s: !!set {a, b}\no: !!omap [{a: 1}, {b: 2}]\np: !!pairs [{a: 1}]\n",
    "bin: !!binary aGVsbG8=\nstr: !!str 12\nint: !!int '7'\n",
    "---\nfirst: 1\n---\n- second\n...\n",
    "nested: [[1, [2, [3, {k: [v]}]]]]\n",
    "",
    "just a scalar\n",
]


@pytest.mark.parametrize("text", EDGES)
def test_edge_documents_load_as_pyyaml_loads_them(text: str) -> None:
    assert load_yaml_documents(text, name="e.yml", max_aliases=100) == _pyyaml(text)


@pytest.mark.parametrize(
    "text",
    [
        "? [a, b]\n: unhashable key\n",  # PyYAML: found unhashable key
        "x: !custom 1\n",  # PyYAML: could not determine a constructor
        "merged:\n  <<: [1, 2]\n",  # PyYAML: expected a mapping for merging
    ],
)
def test_documents_pyyaml_refuses_are_refused_with_its_message(text: str) -> None:
    with pytest.raises(yaml.YAMLError) as reference:
        _pyyaml(text)
    with pytest.raises(InvalidInput) as ours:
        load_yaml_documents(text, name="e.yml", max_aliases=100)
    assert str(getattr(reference.value, "problem", "")) in ours.value.message


def test_plain_documents_take_the_fast_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    generic: list[object] = []
    real = yaml.CSafeLoader.construct_document

    def counted(self: Any, node: Any) -> Any:
        generic.append(node)
        return real(self, node)

    monkeypatch.setattr(yaml.CSafeLoader, "construct_document", counted)
    load_yaml_documents(EDGES[0], name="e.yml", max_aliases=100)
    assert generic == []
    load_yaml_documents(EDGES[3], name="e.yml", max_aliases=100)  # a merge key: PyYAML's way
    assert len(generic) == 1
    assert bounded_yaml._FastSafeLoader.__mro__[1] is yaml.CSafeLoader
