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
# Characters of scalar text aliases may repeat, in all: a few aliases of one long scalar (or a
# title made of an aliased list) would otherwise expand to megabytes in a field or an export.
MAX_ALIAS_CHARS = 1_000_000
# YAML's encoding detection (spec 1.2, 5.2): byte-order marks, else the NUL pattern of ASCII.
_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xef\xbb\xbf", "utf-8"),
)


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
        self.alias_chars = 0
        self.open_anchors: set[str] = set()
        self.node_sizes: dict[int, tuple[int, int]] = {}

    def _refuse(self, what: str) -> None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        raise yaml.YAMLError(f"{what} (line {mark.line + 1})")

    def _size(self, node: yaml.Node) -> tuple[int, int]:
        """Nodes and scalar characters under `node`, counting every repetition (memoised:
        anchors are shared nodes)."""
        known = self.node_sizes.get(id(node))
        if known is not None:
            return known
        nodes, chars = 1, 0
        if isinstance(node, yaml.ScalarNode):
            chars = len(node.value)
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else _pairs(node)
            for child in children:
                n, c = self._size(child)
                nodes, chars = nodes + n, chars + c
        self.node_sizes[id(node)] = (nodes, chars)
        return nodes, chars

    def _count_alias(self, target: yaml.Node) -> None:
        """Add what one more use of `target` repeats; refuse past either bound."""
        nodes, chars = self._size(target)
        self.alias_nodes += nodes
        self.alias_chars += chars
        if self.alias_nodes > MAX_ALIAS_NODES:
            self._refuse(f"YAML aliases repeat more than {MAX_ALIAS_NODES} nodes")
        if self.alias_chars > MAX_ALIAS_CHARS:
            self._refuse(f"YAML aliases repeat more than {MAX_ALIAS_CHARS} characters of text")

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
                self._count_alias(target)
            return super().compose_node(parent, index)
        anchor = getattr(event, "anchor", None)
        if anchor is None:
            return super().compose_node(parent, index)
        self.open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.open_anchors.discard(anchor)


def _pairs(node: yaml.Node) -> list[yaml.Node]:
    return [part for pair in node.value for part in pair]


def _encoding(head: bytes) -> tuple[str, int]:
    """(codec, BOM length) by YAML's rules: a BOM, else where the NULs of an ASCII first
    character sit, else UTF-8."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding, len(bom)
    if len(head) >= 4 and 0 in head[:4]:
        if head[:3] == b"\x00\x00\x00":
            return "utf-32-be", 0
        if head[1:4] == b"\x00\x00\x00":
            return "utf-32-le", 0
        return ("utf-16-be" if head[0] == 0 else "utf-16-le"), 0
    return "utf-8", 0


def utf8_head(data: bytes) -> bytes:
    """A file's start as UTF-8 for sniffing, whatever YAML encoding it uses (a UTF-16 Sigma rule
    is still a Sigma rule); a character cut at the end is dropped."""
    encoding, skip = _encoding(data[:4])
    if encoding == "utf-8":
        return data[skip:] if skip else data
    return data[skip:].decode(encoding, errors="ignore").encode()


def yaml_text(data: str | bytes, *, name: str) -> str:
    """Bytes decoded as YAML says, so bounds and the anchor check see characters whatever the
    encoding; undecodable bytes are InvalidInput naming the byte."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    encoding, skip = _encoding(data[:4])
    try:
        return data[skip:].decode(encoding)
    except UnicodeDecodeError as exc:
        at = skip + exc.start
        line = data[:at].count(b"\n") + 1 if encoding == "utf-8" else None
        raise InvalidInput(
            f"not {encoding} text (byte {at})", Location(file=name, line=line)
        ) from exc


_STR, _SEQ, _MAP = (f"tag:yaml.org,2002:{t}" for t in ("str", "seq", "map"))
_SCALARS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "null", "bool", "int", "float", "timestamp", "binary")
)


class _Generic(Exception):
    """A node the lean constructor leaves to PyYAML's."""


class _FastSafeLoader(yaml.CSafeLoader):
    """libyaml's safe loader with a lean constructor for anchor-free documents: scalars, lists
    and plain maps built in one walk instead of PyYAML's generic one (a third of the load of a
    Sigma rule, measured). Merge keys, other tags, anything unusual or failing go the generic
    way from the start of the document, so the result, or the error, is always PyYAML's."""

    def construct_document(self, node: yaml.Node) -> Any:
        try:
            return self._build(node)
        except Exception:
            return super().construct_document(node)

    def _build(self, node: yaml.Node) -> Any:
        kind, tag = type(node), node.tag
        if kind is yaml.ScalarNode and tag in _SCALARS:
            return node.value if tag == _STR else self.yaml_constructors[tag](self, node)
        if kind is yaml.SequenceNode and tag == _SEQ:
            return [self._build(child) for child in node.value]
        if kind is not yaml.MappingNode or tag != _MAP:
            raise _Generic
        out: dict[Any, Any] = {}
        for key, value in node.value:
            if type(key) is not yaml.ScalarNode:  # unhashable or unusual: PyYAML decides
                raise _Generic
            out[self._build(key)] = self._build(value)
        return out


def load_yaml_documents(text: str | bytes, *, name: str, max_aliases: int) -> list[Any]:
    """Safe-load every YAML document; tags, alias bombs and syntax errors become InvalidInput.

    Decoded first (`yaml_text`): libyaml reads UTF-16 itself, where the anchor check below would
    not see `&` and a bomb would reach the unbounded fast loader."""
    text = yaml_text(text, name=name)
    loader_cls: Any = _FastSafeLoader
    if "&" in text and _ANCHOR.search(text):
        loader_cls = type("Loader", (_BoundedSafeLoader,), {"max_aliases": max_aliases})
    try:
        return list(yaml.load_all(text, Loader=loader_cls))
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, name) from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"invalid YAML: {exc}", Location(file=name)) from exc
    except (ValueError, OverflowError) as exc:  # a scalar no value can be built from: 2021-13-45
        raise InvalidInput(f"invalid YAML value: {exc}", Location(file=name)) from exc


def _syntax_error(exc: yaml.MarkedYAMLError, name: str) -> InvalidInput:
    """Name the line where the broken construct starts (an unclosed quote or bracket), not
    only where the parser gave up, which is often the end of the file."""
    at = exc.problem_mark.line + 1 if exc.problem_mark else None
    start = exc.context_mark.line + 1 if exc.context_mark else None
    problem = f"{exc.problem} (line {at})" if at is not None else str(exc.problem)
    if exc.context and start is not None:
        message = f"invalid YAML: {exc.context} that starts at line {start}: {problem}"
    else:
        message = f"invalid YAML: {problem}"
    return InvalidInput(message, Location(file=name, line=start or at))


_ANCHOR = re.compile(r"(?:^|[\s\[{,:-])&[^\s,\[\]{}]")
