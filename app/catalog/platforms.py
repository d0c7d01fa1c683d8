"""Which ATT&CK platforms a rule targets, from the platforms its catalog wrote.

Effective coverage asks whether a system of an environment runs a platform a rule targets. Rules
name products ("aws", "okta"); systems run ATT&CK platforms ("IaaS", "Identity Provider"). The
knowledge is kb/mappings/rule-platforms.yaml; this module reads it and applies it. Pure.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from app.core.errors import InvalidInput, Location


@dataclass(frozen=True)
class PlatformMap:
    """Lower-cased rule platform → lower-cased ATT&CK platforms."""

    table: dict[str, frozenset[str]]

    def attack_platforms(self, written: Iterable[str], known: frozenset[str]) -> frozenset[str]:
        """The ATT&CK platforms (lower-cased, among `known`) the written ones name; empty when
        none does: the rule is then platform-agnostic."""
        out: set[str] = set()
        for p in written:
            low = p.strip().lower()
            out |= {low} if low in known else self.table.get(low, frozenset()) & known
        return frozenset(out)


def load_platform_map(path: Path) -> PlatformMap:
    """Read and check the table; InvalidInput names the file and the entry."""
    where = Location(file=str(path))
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read rule platforms: {exc}", where) from exc
    table = doc.get("platforms") if isinstance(doc, dict) else None
    if not isinstance(table, dict):
        raise InvalidInput("expected a `platforms` mapping", where)
    out: dict[str, frozenset[str]] = {}
    for key, value in table.items():
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise InvalidInput(
                "expected a list of ATT&CK platform names",
                Location(str(path), field=f"platforms.{key}"),
            )
        out[str(key).lower()] = frozenset(v.lower() for v in value)
    return PlatformMap(out)


def platform_map(kb_dir: Path) -> PlatformMap:
    """The shipped table, read once per process (like the log-source tables)."""
    return _cached(str(kb_dir / "mappings" / "rule-platforms.yaml"))


@functools.cache
def _cached(path: str) -> PlatformMap:
    return load_platform_map(Path(path))
