"""The JSON types a STIX bundle's objects must have in the fields the reader interprets.

A bundle whose object breaks one is refused with the object and field named, never a TypeError
from deep inside the reader.
"""

from __future__ import annotations

from typing import Any

# The fields the reader interprets, each with the JSON type it must have when present
_TEXT_FIELDS = ("name", "description", "created", "modified", "spec_version")
_REL_TEXT_FIELDS = ("relationship_type", "source_ref", "target_ref", "description")
_TEXT_LIST_FIELDS = ("x_mitre_platforms", "x_mitre_domains")


def shape_problem(obj: dict[str, Any], relationship: bool) -> str | None:
    """What is wrong with the types of the fields the reader uses, or None."""
    for key in _REL_TEXT_FIELDS if relationship else _TEXT_FIELDS:
        if obj.get(key) is not None and not isinstance(obj[key], str):
            return f"{key} is not a string"
    if relationship:
        return None
    for key in _TEXT_LIST_FIELDS:
        value = obj.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            return f"{key} is not a list of strings"
    for key, text_keys in (
        ("external_references", ("source_name", "external_id", "url")),
        ("kill_chain_phases", ("kill_chain_name", "phase_name")),
    ):
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            return f"{key} is not a list of objects"
        for item in value:
            for k in text_keys:
                if item.get(k) is not None and not isinstance(item[k], str):
                    return f"{key}: {k} is not a string"
            if key == "kill_chain_phases" and not isinstance(item.get("phase_name"), str):
                return f"{key}: phase_name is missing"
    return None
