"""Pure: the page's rule lists as the seed writes them, shared by the web page and the terminal.

A rule line is `package: id: name: title`; rules are grouped by catalog, and a technique's
sub-techniques' rules by sub-technique.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from app.catalog.models import RuleRef


def rule_line(rule: RuleRef) -> str:
    """The seed's rule line: `package: id: name: title`, leaving out empty or repeated parts."""
    parts: list[str] = []
    for p in (rule.package, rule.rule_id, rule.name, rule.title):
        if p and p not in parts:
            parts.append(p)
    return ": ".join(parts)


def by_catalog(rules: Iterable[RuleRef]) -> list[tuple[str, list[RuleRef]]]:
    grouped: dict[str, list[RuleRef]] = defaultdict(list)
    for r in rules:
        grouped[r.catalog].append(r)
    return sorted(grouped.items())


def by_technique(rules: Iterable[RuleRef]) -> list[tuple[str, list[RuleRef]]]:
    grouped: dict[str, list[RuleRef]] = defaultdict(list)
    for r in rules:
        grouped[r.technique].append(r)
    return sorted(grouped.items())
