"""Pure: the technique page in Markdown, for an assistant whose context is small (the MCP
`technique_page` tool) and for a wiki (the web page's `/techniques/{id}.md` export): one renderer,
so both say the same thing.

A page is at most `PAGE_BYTES` of UTF-8: ATT&CK's lists are cut with "… N more", the description
and detection text are shortened, citations are dropped, and rule lines are paged (`rules_offset`)
and filled into what room the rest of the page leaves. Catalog text (rule names, titles) is
outside data: each becomes one line with no control characters.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from app.attack.models import Ref
from app.attack.text import Token, tokens
from app.catalog.models import RuleRef
from app.technique_page.models import TechniquePage
from app.technique_page.text import rule_line

PAGE_BYTES = 8192
DESCRIPTION_CHARS = 1500
DETECTION_CHARS = 800
LIST_ITEMS = 20
LINE_CHARS = 200
CUT = "\n\n… (page cut at 8 kB)\n"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str, limit: int = LINE_CHARS) -> str:
    """Outside text as one bounded line: no control characters, no line breaks."""
    flat = _CONTROL.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def attack_markdown(text: str, limit: int) -> str:
    """ATT&CK's markdown-ish text with citations dropped and tags made Markdown, shortened."""
    out: list[str] = []
    for part in tokens(text or ""):
        out.append(part if isinstance(part, str) else _token(part))
    flat = re.sub(r"\n{3,}", "\n\n", "".join(out)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _token(t: Token) -> str:
    if t.kind == "link":
        return f"[{t.text}]({t.url})"
    if t.kind == "code":
        return f"`{t.text}`"
    if t.kind == "bold":
        return f"**{t.text}**"
    return "\n" if t.kind == "break" else ""  # a citation: its source list is not shown


def capped(items: Sequence[str], limit: int = LIST_ITEMS) -> str:
    """`a, b, c … N more`: a list no longer than `limit` items."""
    shown = ", ".join(items[:limit])
    return shown + (f" … {len(items) - limit} more" if len(items) > limit else "")


def _refs(refs: Sequence[Ref]) -> list[str]:
    return [one_line(f"{r.id} {r.name}" if r.id else r.name, 80) for r in refs]


def technique_markdown(page: TechniquePage, *, rules_offset: int = 0) -> str:
    """The page in Markdown, at most PAGE_BYTES; rule lines from `rules_offset` on, as many as
    fit, with where the next ones start."""
    head, tail = _header(page), _attack_sections(page)
    room = PAGE_BYTES - _size(head) - _size(tail) - len(CUT.encode())
    return fit("\n\n".join([head, _rules(page, rules_offset, room), tail]))


def fit(text: str) -> str:
    """The text if it fits in PAGE_BYTES, else cut at a line end with a note saying so."""
    data = text.encode()
    if len(data) <= PAGE_BYTES:
        return text
    kept = data[: PAGE_BYTES - len(CUT.encode())].decode(errors="ignore")
    return kept[: kept.rfind("\n") if "\n" in kept else len(kept)] + CUT


def _size(text: str) -> int:
    return len(text.encode()) + 2


def _header(page: TechniquePage) -> str:
    flags = " (revoked)" if page.revoked else (" (deprecated)" if page.deprecated else "")
    lines = [
        f"# {page.id} {page.name}{flags}",
        f"ATT&CK {page.domain} {page.version} · tactics: {', '.join(page.tactics) or '-'} · "
        f"platforms: {', '.join(page.platforms) or '-'}",
    ]
    if page.url:
        lines.append(page.url)
    if page.revoked_by:
        lines.append(f"Revoked by {page.revoked_by.id} {page.revoked_by.name}")
    if page.parent:
        lines.append(f"Sub-technique of {page.parent.id} {page.parent.name}")
    if page.subtechniques:
        lines.append(
            f"Sub-techniques ({len(page.subtechniques)}): " + capped(_refs(page.subtechniques))
        )
    lines += ["", "## Description", attack_markdown(page.description, DESCRIPTION_CHARS)]
    return "\n".join(lines)


def _attack_sections(page: TechniquePage) -> str:
    """Detection, mitigations and who uses it: ATT&CK's side, each list cut."""
    parts = ["## Detection"]
    if page.detection:
        parts.append(attack_markdown(page.detection, DETECTION_CHARS))
    components = [one_line(c.name, 80) for c in page.data_components]
    parts.append(f"Data components ({len(components)}): {capped(components) or '-'}")
    if page.detection_strategies:
        strategies = [
            one_line(f"{s.id} {s.name} ({len(s.analytics)} analytics)", 120)
            for s in page.detection_strategies
        ]
        parts.append(f"Detection strategies ({len(strategies)}): {capped(strategies, 10)}")
    parts.append(f"\n## Mitigations ({len(page.mitigations)})")
    parts.append(capped(_refs(page.mitigations)) or "-")
    parts.append("\n## Used by")
    for label, refs in (
        ("Groups", page.groups),
        ("Software", page.software),
        ("Campaigns", page.campaigns),
    ):
        parts.append(f"{label} ({len(refs)}): {capped(_refs(refs)) or '-'}")
    return "\n".join(parts)


def _rules(page: TechniquePage, offset: int, room: int) -> str:
    """Rule counts per catalog, then rule lines from `offset` while they fit in `room` bytes."""
    rules = sorted(page.rules, key=lambda r: (r.catalog, r.rule_id))
    counts = Counter(r.catalog for r in rules)
    lines = [f"## Rules ({len(rules)})"]
    if counts:
        lines.append("By catalog: " + ", ".join(f"{c} {n}" for c, n in sorted(counts.items())))
    subs = Counter(r.technique for r in page.subtechnique_rules)
    if subs:
        lines.append(
            f"Sub-technique rules ({len(page.subtechnique_rules)}): "
            + capped([f"{t} {n}" for t, n in sorted(subs.items())])
        )
    room -= sum(_size(line) for line in lines) + 80  # and the "more" line
    shown = 0
    for r in rules[offset:]:
        line = _rule_line(r)
        if _size(line) > room:
            break
        lines.append(line)
        room -= _size(line)
        shown += 1
    rest = len(rules) - offset - shown
    if rest > 0:
        lines.append(f"… {rest} more rules: rules_offset={offset + shown}")
    return "\n".join(lines)


def _rule_line(r: RuleRef) -> str:
    said = "" if r.fires is None else (" · fires" if r.fires else f" · cannot fire: {r.why_not}")
    how = "" if r.how == "direct" else f" ({r.how} from {r.mapped_as})"
    return "- " + one_line(f"{r.catalog}: {rule_line(r)}{how}{said}", LINE_CHARS)
