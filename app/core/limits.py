"""Bounded readers: every byte kbmap takes from outside passes through one of these.

Each limit comes from `Limits` (settings) and a violation raises TooLarge / InvalidInput naming
the input, so an oversized or hostile file is refused before it costs memory or changes anything.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from typing import Any

import orjson

from app.core.errors import InvalidInput, Location, TooLarge

GZIP_MAGIC = b"\x1f\x8b"


def gunzip_bounded(data: bytes, *, limit: int, name: str) -> bytes:
    """Decompress gzip data, refusing output larger than `limit` (a gzip bomb stops early)."""
    try:
        d = zlib.decompressobj(wbits=31)
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"not a valid gzip file ({exc})", Location(file=name)) from exc
    if len(out) > limit or d.unconsumed_tail:
        raise TooLarge(f"uncompressed size exceeds the limit of {limit} bytes", Location(file=name))
    if not d.eof:
        raise InvalidInput("gzip data is truncated", Location(file=name))
    return out


def maybe_gunzip(data: bytes, *, limit: int, name: str) -> bytes:
    if data[:2] == GZIP_MAGIC:
        return gunzip_bounded(data, limit=limit, name=name)
    if len(data) > limit:
        raise TooLarge(f"size exceeds the limit of {limit} bytes", Location(file=name))
    return data


def loads_json(data: bytes | str, *, name: str) -> Any:
    """orjson parse; its own nesting limit (1024) bounds depth, errors name file and line."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        reason = exc.msg.split(",")[0]  # orjson versions differ in what follows the reason
        raise InvalidInput(
            f"not valid JSON: {reason}", Location(file=name, line=exc.lineno)
        ) from exc


def json_depth_ok(value: Any, max_depth: int) -> bool:
    """True when nesting stays within max_depth (for small user documents, not STIX bundles)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


# strings and comments are skipped whole; what is left that nests is brackets and key dots
_TOML_TOKEN = re.compile(
    r'"""(?:[^\\]|\\[\s\S])*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\''
    r"|#[^\n]*|[\[\]{}.=,\n]"
)


def toml_too_deep(text: str, max_depth: int) -> int | None:
    """The line where TOML nesting (arrays, inline tables, dotted keys) passes `max_depth`,
    else None: tomllib recurses per level, so a deep file must be refused before it parses."""
    open_: list[str] = []  # innermost last: "[" or "{"
    dots, in_key, line = 0, True, 1
    for m in _TOML_TOKEN.finditer(text):
        tok = m.group()
        if tok[0] in "\"'#":
            line += tok.count("\n")
            continue
        if tok == "\n":
            line += 1
            in_key, dots = (True, 0) if not open_ else (in_key, dots)
        elif tok in "[{":
            open_.append(tok)
            in_key, dots = (tok == "{" or in_key), (0 if tok == "{" else dots)
        elif tok in "]}":
            open_ = open_[:-1]
            in_key = in_key and tok == "]" and not open_
        elif tok == "=":
            in_key, dots = False, 0
        elif tok == ",":
            in_key = bool(open_) and open_[-1] == "{"
        elif in_key:
            dots += 1
        if len(open_) + dots > max_depth:
            return line
    return None


def read_stream_bounded(stream: io.BufferedIOBase | Any, *, limit: int, name: str) -> bytes:
    """Read at most `limit` bytes from a file-like object, refusing anything longer."""
    data: bytes = stream.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"size exceeds the limit of {limit} bytes", Location(file=name))
    return data


__all__ = [
    "gunzip_bounded",
    "gzip",
    "json_depth_ok",
    "loads_json",
    "maybe_gunzip",
    "read_stream_bounded",
    "toml_too_deep",
]
