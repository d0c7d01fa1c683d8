"""Pure: how ATT&CK text reads, shared by the web page and the terminal (`kbmap technique`).

It is markdown-ish: paragraphs, `*` bullet lists, links, `code`, **bold**, `<br>` and
`(Citation: Source)` markers. `tokens` splits one line into plain runs and those constructs, and
`Citations` numbers the sources in order of first use, so both renderings show the same `[n]`
and the same reference list.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

_TOKENS = re.compile(
    r"\(Citation:\s*(?P<cite>[^)]*)\)"
    r"|\[(?P<label>[^\]\n]+)\]\((?P<url>[^)\s]+)\)"
    r"|<code>(?P<code>.*?)</code>"
    r"|`(?P<tick>[^`\n]+)`"
    r"|\*\*(?P<bold>[^*\n]+)\*\*"
    r"|<b>(?P<b>.*?)</b>"
    r"|<br\s*/?>",
    re.IGNORECASE | re.DOTALL,
)
_SITE_TECHNIQUE = re.compile(r"^https://attack\.mitre\.org/techniques/(T\d{4})(?:/(\d{3}))?/?$")
_PARAGRAPHS = re.compile(r"\n\s*\n")
_BULLET = re.compile(r"^\s*[*-] +")

Kind = Literal["cite", "link", "code", "bold", "break"]
_SIMPLE: tuple[tuple[str, Kind], ...] = (
    ("code", "code"),
    ("tick", "code"),
    ("bold", "bold"),
    ("b", "bold"),
)


@dataclass(frozen=True)
class Token:
    """One construct of ATT&CK text: `text` is the source name, link label, code or bold text."""

    kind: Kind
    text: str = ""
    url: str = ""


def _token(m: re.Match[str]) -> Token:
    if m.group("cite") is not None:
        return Token("cite", m.group("cite").strip())
    if m.group("label") is not None:
        return Token("link", m.group("label"), m.group("url"))
    for key, kind in _SIMPLE:
        if m.group(key) is not None:
            return Token(kind, m.group(key))
    return Token("break")


def tokens(line: str) -> Iterator[str | Token]:
    """Plain runs (str, possibly empty) and constructs (Token) of `line`, in order."""
    pos = 0
    for m in _TOKENS.finditer(line):
        yield line[pos : m.start()]
        yield _token(m)
        pos = m.end()
    yield line[pos:]


def paragraphs(text: str | None) -> list[str]:
    return [p.strip() for p in _PARAGRAPHS.split(text or "") if p.strip()]


def bullet_items(paragraph: str) -> list[str] | None:
    """The items when every line of `paragraph` is a bullet, else None."""
    lines = paragraph.splitlines()
    if not all(_BULLET.match(line) for line in lines):
        return None
    return [_BULLET.sub("", line) for line in lines]


def site_technique(url: str) -> str | None:
    """The technique id an attack.mitre.org technique URL names (T1059/001 → T1059.001)."""
    m = _SITE_TECHNIQUE.match(url)
    if m is None:
        return None
    return m.group(1) + (f".{m.group(2)}" if m.group(2) else "")


@dataclass
class Citations:
    """Cited sources of one page, numbered from 1 in order of first use; each listed once."""

    names: list[str] = field(default_factory=list)

    def number(self, name: str) -> int:
        if name not in self.names:
            self.names.append(name)
        return self.names.index(name) + 1
