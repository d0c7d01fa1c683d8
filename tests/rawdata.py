"""Independent readings of the raw shared files: expected values come from here, not from app/."""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from typing import Any

from tests.conftest import ATTACK_DIR


@lru_cache(maxsize=8)
def bundle(name: str) -> dict[str, Any]:
    with gzip.open(ATTACK_DIR / name, "rt", encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def objects(name: str) -> list[dict[str, Any]]:
    return list(bundle(name)["objects"])


def ext_id(obj: dict[str, Any]) -> str | None:
    for ref in obj.get("external_references", []):
        if ref.get("source_name", "").startswith("mitre") and ref.get("external_id"):
            return str(ref["external_id"])
    return None


def by_ext_id(name: str, stix_type: str, attack_id: str) -> dict[str, Any]:
    hits = [o for o in objects(name) if o["type"] == stix_type and ext_id(o) == attack_id]
    assert len(hits) == 1, (attack_id, len(hits))
    return hits[0]


def by_stix_id(name: str) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in objects(name)}


def relationships(name: str, rtype: str) -> list[dict[str, Any]]:
    return [
        o
        for o in objects(name)
        if o["type"] == "relationship" and o["relationship_type"] == rtype and not o.get("revoked")
    ]


def active(o: dict[str, Any]) -> bool:
    return not o.get("revoked") and not o.get("x_mitre_deprecated")


def active_techniques(name: str) -> set[str]:
    return {ext_id(o) or "" for o in objects(name) if o["type"] == "attack-pattern" and active(o)}
