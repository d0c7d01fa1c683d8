"""A synthetic "ATT&CK 19.0"-like enterprise bundle, derived from the real 18.1 one.

ATT&CK 19 split Defense Evasion into Stealth and Defense Impairment and renumbered techniques
(T1562 → T1685, T1562.001 → T1685, T1070.001 → T1685.005, T1562.004 → T1686, T1562.010 → T1689).
No 19.x bundle is available here, so this module makes changes of that kind to 18.1, the way MITRE
publishes them, and returns the plan it applied so tests can state expectations without asking the
application:

- the defense-evasion tactic is deprecated and two new tactics (stealth, defense-impairment) take
  its place in the matrix;
- techniques are revoked by new attack-pattern objects (new ids, revoked-by relationships); T1562
  is split 1:N: the technique goes to T1685 while its sub-techniques go to T1685, T1686, T1689 or
  new T1685.NNN sub-techniques; T1070.001 moves under the new parent as T1685.005;
- uses / mitigates / detects relationships of a revoked technique move to its replacement;
- one sub-technique (T1562.003) is deprecated with no replacement;
- every other live technique under defense-evasion moves to stealth, except the T1553 family,
  which moves to defense-impairment.

Only the ids the brief names come from ATT&CK 19; the T1685.NNN numbering of the other T1562
sub-techniques, the tactic ids TA0112/TA0113 and the T1553 move are made up. Nothing here claims
to reproduce the real release.
"""

from __future__ import annotations

import copy
import gzip
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import ATTACK_DIR

SOURCE = "enterprise-attack-18.1.json.gz"
VERSION = "19.0"
FILE_NAME = "synthetic-enterprise-19.0.json.gz"  # not MITRE's name form: the version is passed
NS = uuid.UUID("6d1b7f43-3c55-4b8f-9a34-19a1e5f0c019")
STAMP = "2026-04-28T00:00:00.000Z"
RETIRED = "defense-evasion"
STEALTH, IMPAIRMENT = "stealth", "defense-impairment"
NEW_TACTICS = {
    STEALTH: ("Stealth", "TA0112", "The adversary is trying to avoid being detected."),
    IMPAIRMENT: ("Defense Impairment", "TA0113", "The adversary is trying to weaken defenses."),
}
# old id → new id (the ids the brief names)
NAMED = {
    "T1562": "T1685",
    "T1562.001": "T1685",
    "T1070.001": "T1685.005",
    "T1562.004": "T1686",
    "T1562.010": "T1689",
}
# new id → the 18.1 technique whose content (name, description, platforms) it starts from
NEW_FROM = {
    "T1685": "T1562.001",
    "T1685.005": "T1070.001",
    "T1686": "T1562.004",
    "T1689": "T1562.010",
}
SPLIT_PARENT = "T1562"
NEW_PARENT = "T1685"
DEPRECATED = ("T1562.003",)
IMPAIRMENT_FAMILIES = ("T1553",)


@dataclass
class Synthetic:
    """The bundle written and the plan applied (expected values for tests)."""

    path: Path
    version: str
    revoked: dict[str, str]  # old id → replacement id (active in 19.0)
    added: dict[str, str]  # new technique id → name
    deprecated: list[str]
    moved: dict[str, tuple[list[str], list[str]]]  # technique → (18.1 tactics, 19.0 tactics)
    tactics_added: list[str]
    tactics_retired: list[str]
    matrix: list[str]  # tactic shortnames in 19.0 matrix order
    new_parent: dict[str, str] = field(default_factory=dict)  # new sub-technique → parent


def _ext(o: dict[str, Any]) -> str | None:
    for ref in o.get("external_references", []):
        if ref.get("source_name") == "mitre-attack" and ref.get("external_id"):
            return str(ref["external_id"])
    return None


def _sid(kind: str, key: str) -> str:
    return f"{kind}--{uuid.uuid5(NS, key)}"


def _live(o: dict[str, Any]) -> bool:
    return not o.get("revoked") and not o.get("x_mitre_deprecated")


def plan_ids(techniques: dict[str, dict[str, Any]]) -> dict[str, str]:
    """old → new for every T1562 sub-technique: the named ones, then T1685.NNN in id order
    (skipping .005, which the brief gives to T1070.001), leaving out the deprecated one."""
    out = dict(NAMED)
    taken = {n for n in NAMED.values() if n.startswith(f"{NEW_PARENT}.")}
    number = 0
    for tid in sorted(techniques):
        o = techniques[tid]
        if not tid.startswith(f"{SPLIT_PARENT}.") or tid in out or tid in DEPRECATED:
            continue
        if not _live(o):
            continue
        number += 1
        while f"{NEW_PARENT}.{number:03d}" in taken:
            number += 1
        out[tid] = f"{NEW_PARENT}.{number:03d}"
    return out


def _relationship(rtype: str, src: str, dst: str, template: dict[str, Any]) -> dict[str, Any]:
    r = {k: v for k, v in template.items() if k in ("created_by_ref", "object_marking_refs")}
    r.update(
        {
            "type": "relationship",
            "id": _sid("relationship", f"{rtype}:{src}:{dst}"),
            "created": STAMP,
            "modified": STAMP,
            "relationship_type": rtype,
            "source_ref": src,
            "target_ref": dst,
            "x_mitre_deprecated": False,
            "x_mitre_attack_spec_version": "3.3.0",
        }
    )
    return r


def build(dest: Path) -> Synthetic:
    """Write the synthetic bundle into folder `dest`; returns where and what changed."""
    with gzip.open(ATTACK_DIR / SOURCE, "rt", encoding="utf-8") as fh:
        doc: dict[str, Any] = json.load(fh)
    objs: list[dict[str, Any]] = doc["objects"]
    techniques = {_ext(o) or "": o for o in objs if o["type"] == "attack-pattern" and _ext(o)}
    template = next(o for o in objs if o["type"] == "relationship")
    before = {tid: _phases(o) for tid, o in techniques.items() if _live(o)}

    # tactics: retire one, add two in its place in the matrix
    tactic_objs = {o["x_mitre_shortname"]: o for o in objs if o["type"] == "x-mitre-tactic"}
    retired = tactic_objs[RETIRED]
    retired.update({"x_mitre_deprecated": True, "modified": STAMP})
    new_refs = []
    for short, (name, tid, text) in NEW_TACTICS.items():
        t = copy.deepcopy(retired)
        t.update(
            {
                "id": _sid("x-mitre-tactic", short),
                "name": name,
                "description": text,
                "x_mitre_shortname": short,
                "x_mitre_deprecated": False,
                "created": STAMP,
                "modified": STAMP,
                "external_references": [
                    {
                        "source_name": "mitre-attack",
                        "external_id": tid,
                        "url": f"https://attack.mitre.org/tactics/{tid}",
                    }
                ],
            }
        )
        objs.append(t)
        new_refs.append(t["id"])
    matrix = next(o for o in objs if o["type"] == "x-mitre-matrix")
    refs = matrix["tactic_refs"]
    at = refs.index(retired["id"])
    matrix["tactic_refs"] = refs[:at] + new_refs + refs[at + 1 :]
    matrix["modified"] = STAMP

    # new techniques, revocations, relationships
    mapping = plan_ids(techniques)
    new_objs: dict[str, dict[str, Any]] = {}
    for new in dict.fromkeys(mapping.values()):
        src = techniques[NEW_FROM.get(new) or next(o for o, n in mapping.items() if n == new)]
        t = copy.deepcopy(src)
        t.update(
            {
                "id": _sid("attack-pattern", new),
                "created": STAMP,
                "modified": STAMP,
                "revoked": False,
                "x_mitre_deprecated": False,
                "x_mitre_is_subtechnique": "." in new,
                "x_mitre_version": "1.0",
                "kill_chain_phases": [
                    {"kill_chain_name": "mitre-attack", "phase_name": IMPAIRMENT}
                ],
                "external_references": [
                    {
                        "source_name": "mitre-attack",
                        "external_id": new,
                        "url": f"https://attack.mitre.org/techniques/{new.replace('.', '/')}",
                    },
                    *src["external_references"][1:],
                ],
            }
        )
        new_objs[new] = t
        objs.append(t)
    old_to_new_sid = {techniques[o]["id"]: new_objs[n]["id"] for o, n in mapping.items()}
    for old, new in mapping.items():
        techniques[old].update({"revoked": True, "modified": STAMP})
        objs.append(
            _relationship("revoked-by", techniques[old]["id"], new_objs[new]["id"], template)
        )
    parents = {n: NEW_PARENT for n in new_objs if n.startswith(f"{NEW_PARENT}.")}
    for sub, parent in parents.items():
        objs.append(
            _relationship("subtechnique-of", new_objs[sub]["id"], new_objs[parent]["id"], template)
        )
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for o in objs:
        if o["type"] == "relationship" and o["relationship_type"] not in (
            "revoked-by",
            "subtechnique-of",
        ):
            o["source_ref"] = old_to_new_sid.get(o["source_ref"], o["source_ref"])
            o["target_ref"] = old_to_new_sid.get(o["target_ref"], o["target_ref"])
            key = (o["relationship_type"], o["source_ref"], o["target_ref"])
            if key in seen:
                continue
            seen.add(key)
        kept.append(o)
    doc["objects"] = objs = kept

    for tid in DEPRECATED:
        techniques[tid].update({"x_mitre_deprecated": True, "modified": STAMP})

    # every other live technique leaves the retired tactic
    moved: dict[str, tuple[list[str], list[str]]] = {}
    for tid, o in techniques.items():
        if not _live(o) or RETIRED not in _phases(o):
            continue
        family = tid.split(".")[0] in IMPAIRMENT_FAMILIES
        target = IMPAIRMENT if family else STEALTH
        old = _phases(o)
        for p in o["kill_chain_phases"]:
            if p["phase_name"] == RETIRED:
                p["phase_name"] = target
        o["modified"] = STAMP
        moved[tid] = (old, _phases(o))

    doc["id"] = _sid("bundle", VERSION)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / FILE_NAME
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as fh:
        json.dump(doc, fh)
    order = matrix["tactic_refs"]
    short_of = {o["id"]: o["x_mitre_shortname"] for o in objs if o["type"] == "x-mitre-tactic"}
    return Synthetic(
        path=path,
        version=VERSION,
        revoked=dict(mapping),
        added={n: o["name"] for n, o in new_objs.items()},
        deprecated=list(DEPRECATED),
        moved={k: v for k, v in moved.items() if k in before},
        tactics_added=sorted(NEW_TACTICS),
        tactics_retired=[RETIRED],
        matrix=[short_of[t] for t in order],
        new_parent=parents,
    )


def _phases(o: dict[str, Any]) -> list[str]:
    return [
        p["phase_name"]
        for p in o.get("kill_chain_phases", [])
        if p.get("kill_chain_name", "").startswith("mitre")
    ]


# A tiny canonical catalog made against 16.1: no shared Sigma rule names T1574.002, so this one
# does (and T1086, revoked long before, with its replacement beside it in one rule).
LEGACY_CATALOG = """\
name: legacy16
vendor: kbmap tests
attack:
  domain: enterprise
  version: "16.1"
rules:
  - id: R-1
    title: DLL side-loading
    techniques: [T1574.002]
    tactics: [persistence]
  - id: R-2
    title: PowerShell
    techniques: [T1086, T1059.001]
    tactics: [execution]
  - id: R-3
    title: side-loading pinned to a tactic
    techniques: ["T1574.002@defense-evasion"]
  - id: R-4
    title: an id no release has
    techniques: [T1999]
  - id: R-5
    title: no technique at all
"""
