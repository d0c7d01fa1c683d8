"""Pure: an uploaded Navigator layer file → checked layers → a catalog in kbmap's canonical format.

Reading is bounded (size, JSON depth) and validated by the layer models, so a bad file is refused
with the path of the first bad field and every problem listed. The catalog it becomes is handed
to the catalog service as one canonical JSON file, so layer imports get the same validation,
remapping and all-or-nothing write as any other catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from app.core.config import Limits
from app.core.errors import InvalidInput, Issue, Location, TooLarge
from app.core.limits import json_depth_ok, loads_json
from app.layer.navigator import Gradient, Layer, Technique, read_layers


def parse_layers(data: bytes, *, filename: str, limits: Limits) -> list[Layer]:
    """One layer or a list of them, all of one domain; InvalidInput names the bad field."""
    if len(data) > limits.max_upload_bytes:
        raise TooLarge(
            f"size exceeds the limit of {limits.max_upload_bytes} bytes", Location(file=filename)
        )
    doc = loads_json(data, name=filename)
    if not json_depth_ok(doc, limits.max_json_depth):
        raise InvalidInput(
            f"nesting is deeper than {limits.max_json_depth} levels", Location(file=filename)
        )
    try:
        layers = read_layers(doc)
    except ValidationError as exc:
        raise _invalid(exc, filename, is_list=isinstance(doc, list)) from exc
    if not layers:
        raise InvalidInput("the file holds an empty list of layers", Location(file=filename))
    domains = sorted({x.domain for x in layers})
    if len(domains) > 1:
        raise InvalidInput(
            f"the layers are for several domains ({', '.join(domains)}); import one domain",
            Location(file=filename, field="domain"),
        )
    return layers


def _invalid(exc: ValidationError, filename: str, *, is_list: bool) -> InvalidInput:
    issues = []
    for err in exc.errors()[:50]:
        where = _path(err["loc"], is_list)
        issues.append(Issue(f"{where}: {err['msg']}", Location(file=filename, field=where)))
    more = f" ({exc.error_count()} problem(s); nothing imported)"
    first = issues[0]
    return InvalidInput(
        f"not a valid Navigator layer: {first.message}{more}", first.location, issues=issues
    )


def _path(loc: Sequence[int | str], is_list: bool) -> str:
    """pydantic's error location as a reader writes it: `[1].techniques[3].score`."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("item", "divider") and i and isinstance(loc[i - 1], int):
            continue  # pydantic's tag for "metadata item or divider"
        else:
            out += f".{part}" if out else part
    return out if is_list else out or "layer"


SEVERITY_BANDS = ((0.9, "critical"), (0.7, "high"), (0.4, "medium"), (0.15, "low"))


def counts_as_rule(e: Technique) -> bool:
    """Score above 0, or no score and enabled with an annotation; an explicit 0 is 'not covered'
    and a bare `showSubtechniques` entry says nothing about the technique."""
    if e.score is not None:
        return e.score > 0
    return e.is_enabled and e.annotated


def severity(score: float | None, gradient: Gradient | None) -> str | None:
    """Score band → rule severity, relative to the layer's gradient (0-100 without one)."""
    if score is None:
        return None
    lo, hi = (gradient.minValue, gradient.maxValue) if gradient else (0.0, 100.0)
    frac = (score - lo) / (hi - lo)
    return next((name for floor, name in SEVERITY_BANDS if frac >= floor), "informational")


def catalog_document(layers: Sequence[Layer], *, name: str) -> dict[str, object]:
    """kbmap's canonical catalog for one or several layers: one rule per counted entry, with id
    `<name>:<techniqueID>[:<tactic>]`; an entry repeated across layers keeps its highest score."""
    rules: dict[str, dict[str, object]] = {}
    best: dict[str, float] = {}
    for layer in layers:
        for e in layer.techniques:
            if not counts_as_rule(e):
                continue
            rid = f"{name}:{e.techniqueID}" + (f":{e.tactic}" if e.tactic else "")
            score = e.score if e.score is not None else -1.0
            if rid in rules and best[rid] >= score:
                rules[rid]["enabled"] = bool(rules[rid]["enabled"]) or e.is_enabled
                continue
            rule: dict[str, object] = {
                "id": rid,
                "title": f"{e.techniqueID} in layer {layer.name}",
                "techniques": [f"{e.techniqueID}@{e.tactic}" if e.tactic else e.techniqueID],
                "enabled": e.is_enabled or bool(rid in rules and rules[rid]["enabled"]),
                "x-layer": layer.name,
            }
            if e.comment:
                rule["description"] = e.comment
            level = severity(e.score, layer.gradient)
            if level:
                rule["severity"] = level
            if e.score is not None:
                rule["x-score"] = e.score
            rules[rid], best[rid] = rule, score
    return {
        "name": name,
        "product": "ATT&CK Navigator layer",
        "rules": [rules[k] for k in sorted(rules)],
    }


@dataclass
class LayerSource:
    """The catalog document made from a layer, offered to the catalog importer as one file
    (structurally a `CatalogSource`)."""

    name: str
    data: bytes

    def files(self) -> list[tuple[str, bytes]]:
        return [(self.name, self.data)]

    def head(self, size: int = 4096) -> bytes:
        return self.data[:size]

    @property
    def is_tree(self) -> bool:
        return False


def catalog_source(
    layers: Sequence[Layer], *, name: str, domain: str, version: str, filename: str
) -> LayerSource:
    """The canonical catalog file for the layers; refuses layers that would give no rule."""
    doc = catalog_document(layers, name=name)
    if not doc["rules"]:
        raise InvalidInput(
            "no technique entry has a score above 0 or an enabled annotation; nothing imported",
            Location(file=filename, field="techniques"),
        )
    doc["attack"] = {"domain": domain, "version": version}
    return LayerSource(name=f"{name}.json", data=orjson.dumps(doc))
