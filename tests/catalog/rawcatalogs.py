"""Independent readings of the raw catalog tarballs (tarfile + regex/yaml, not the importers)."""

from __future__ import annotations

import re
import tarfile
from functools import lru_cache

import yaml

from tests.conftest import CATALOG_DIR

SIGMA_TOPS = (
    "rules/",
    "rules-emerging-threats/",
    "rules-threat-hunting/",
    "rules-compliance/",
    "rules-placeholder/",
    "deprecated/",
    "unsupported/",
)
TAG = re.compile(
    r"^\s*-\s*['\"]?attack\.(t\d{4}(?:\.\d{3})?)['\"]?\s*(?:#.*)?$", re.IGNORECASE | re.MULTILINE
)


@lru_cache(maxsize=4)
def sigma_rules(tarball: str) -> dict[str, list[str]]:
    """path → technique ids (upper-case) from `- attack.tNNNN` tag lines of every rule file."""
    out: dict[str, list[str]] = {}
    with tarfile.open(CATALOG_DIR / tarball) as tar:
        for m in tar:
            if m.isfile() and m.name.endswith(".yml") and m.name.startswith(SIGMA_TOPS):
                text = tar.extractfile(m).read().decode("utf-8")  # type: ignore[union-attr]
                out[m.name] = list(dict.fromkeys(t.upper() for t in TAG.findall(text)))
    return out


@lru_cache(maxsize=1)
def xp_rules() -> dict[str, list[str]]:
    """rule folder → technique ids from metainfo.yaml ContentRelations.Implements.ATTACK."""
    out: dict[str, list[str]] = {}
    with tarfile.open(CATALOG_DIR / "open-xp-rules-rules.tar.gz") as tar:
        for m in tar:
            if m.isfile() and m.name.endswith("/metainfo.yaml") and "/correlation_rules/" in m.name:
                doc = yaml.safe_load(tar.extractfile(m).read())  # type: ignore[union-attr]
                attack = ((doc.get("ContentRelations") or {}).get("Implements") or {}).get(
                    "ATTACK"
                ) or {}
                techs = [_fold(str(t)) for ts in attack.values() for t in (ts or [])]
                out[m.name.rsplit("/", 1)[0]] = list(dict.fromkeys(techs))
    return out


def _fold(written: str) -> str:
    """'https://attack.mitre.org/techniques/T1486/' → 'T1486' (XP rules write URLs too)."""
    m = re.search(r"T(\d{4})(?:[./](\d{3}))?", written.upper())
    return (f"T{m.group(1)}" + (f".{m.group(2)}" if m.group(2) else "")) if m else written


STATUS = re.compile(r"^status:\s*['\"]?([A-Za-z_-]+)", re.MULTILINE)


@lru_cache(maxsize=4)
def sigma_status(tarball: str) -> dict[str, str | None]:
    """path → the rule's top-level `status:` (None when absent)."""
    out: dict[str, str | None] = {}
    with tarfile.open(CATALOG_DIR / tarball) as tar:
        for m in tar:
            if m.isfile() and m.name.endswith(".yml") and m.name.startswith(SIGMA_TOPS):
                text = tar.extractfile(m).read().decode("utf-8")  # type: ignore[union-attr]
                found = STATUS.search(text)
                out[m.name] = found.group(1).lower() if found else None
    return out
