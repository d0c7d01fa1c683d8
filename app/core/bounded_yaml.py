"""Bounded YAML: every YAML document kbmap reads passes through `load_yaml_documents`.

Apart from app.core.limits so that what reads no YAML (`kbmap ingest`) does not import PyYAML.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from app.core.errors import InvalidInput, Location

# Nodes a document may repeat through aliases, in all: each alias use costs the size of the node
# it names, nested aliases included, so ten levels of ten aliases (10^10 nodes once expanded by
# anything that walks or serialises the document) are refused although they are only 90 uses.
MAX_ALIAS_NODES = 10_000


class _BoundedSafeLoader(yaml.SafeLoader):
    """Pure-Python safe loader that bounds aliases, so alias bombs are refused.

    It counts alias uses (`max_aliases`) and the nodes they repeat (`MAX_ALIAS_NODES`), and refuses
    an alias to a node still being read (a recursive document, which no walker could finish).
    Only documents that define an anchor take this (slow) path; the rest use libyaml's CSafeLoader,
    whose composer cannot be hooked, but which cannot expand an alias without an anchor.
    """

    max_aliases = 100

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.alias_count = 0
        self.alias_nodes = 0
        self.open_anchors: set[str] = set()
        self.node_sizes: dict[int, int] = {}

    def _refuse(self, what: str) -> None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        raise yaml.YAMLError(f"{what} (line {mark.line + 1})")

    def _size(self, node: yaml.Node) -> int:
        """Nodes under `node`, counting every repetition (memoised: anchors are shared nodes)."""
        known = self.node_sizes.get(id(node))
        if known is not None:
            return known
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._size(k) + self._size(v) for k, v in node.value)
        self.node_sizes[id(node)] = size
        return size

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self.alias_count += 1
            if self.alias_count > self.max_aliases:
                self._refuse(f"more than {self.max_aliases} YAML aliases")
            if event.anchor in self.open_anchors:
                self._refuse(f"YAML alias *{event.anchor} refers to a node that contains it")
            target = self.anchors.get(event.anchor)
            if target is not None:
                self.alias_nodes += self._size(target)
                if self.alias_nodes > MAX_ALIAS_NODES:
                    self._refuse(f"YAML aliases repeat more than {MAX_ALIAS_NODES} nodes")
            return super().compose_node(parent, index)
        anchor = getattr(event, "anchor", None)
        if anchor is None:
            return super().compose_node(parent, index)
        self.open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.open_anchors.discard(anchor)


def load_yaml_documents(text: str | bytes, *, name: str, max_aliases: int) -> list[Any]:
    """Safe-load every YAML document; tags, alias bombs and syntax errors become InvalidInput."""
    loader_cls: Any = yaml.CSafeLoader
    has_amp = (b"&" in text) if isinstance(text, bytes) else ("&" in text)
    if has_amp and _ANCHOR.search(
        text if isinstance(text, str) else text.decode("utf-8", "replace")
    ):
        loader_cls = type("Loader", (_BoundedSafeLoader,), {"max_aliases": max_aliases})
    try:
        return list(yaml.load_all(text, Loader=loader_cls))
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise InvalidInput(f"invalid YAML: {exc.problem}", Location(file=name, line=line)) from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"invalid YAML: {exc}", Location(file=name)) from exc


_ANCHOR = re.compile(r"(?:^|[\s\[{,:-])&[^\s,\[\]{}]")
