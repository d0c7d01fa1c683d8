"""Pure STIX reader: bundle bytes → typed release records. No database, no network.

Knows STIX 2.0 and 2.1, detects the ATT&CK domain from the bundle's own objects and the release
version from the `x-mitre-collection` object (2.1) or MITRE's file-name form, and translates STIX
type names into ATT&CK's words through one table, so nothing above this module says
`attack-pattern` or `intrusion-set`.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.attack.stix_shape import shape_problem
from app.core.errors import InvalidInput, Issue, Location
from app.core.limits import loads_json, maybe_gunzip

# STIX type → ATT&CK kind. Types not listed keep their STIX name with '-' → '_'.
KIND_BY_STIX_TYPE: dict[str, str] = {
    "attack-pattern": "technique",
    "x-mitre-tactic": "tactic",
    "course-of-action": "mitigation",
    "intrusion-set": "group",
    "malware": "software",
    "tool": "software",
    "campaign": "campaign",
    "x-mitre-data-source": "data_source",
    "x-mitre-data-component": "data_component",
    "x-mitre-detection-strategy": "detection_strategy",
    "x-mitre-analytic": "analytic",
    "x-mitre-matrix": "matrix",
    "x-mitre-asset": "asset",
    "identity": "identity",
    "marking-definition": "marking_definition",
}
DOMAINS = ("enterprise", "mobile", "ics")
_FILE_NAME = re.compile(r"(enterprise|mobile|ics)-attack-(\d+)\.(\d+)\.json(?:\.gz)?$")
_VERSION = re.compile(r"^(\d+)\.(\d+)$")
# Fields stored as columns (or dropped as STIX bookkeeping); the rest of an object goes to `data`.
_COLUMN_FIELDS = frozenset(
    {
        "type",
        "id",
        "name",
        "description",
        "created",
        "modified",
        "revoked",
        "x_mitre_deprecated",
        "x_mitre_platforms",
        "external_references",
        "object_marking_refs",
        "created_by_ref",
        "x_mitre_modified_by_ref",
        "spec_version",
        "x_mitre_attack_spec_version",
    }
)

# One object as ingest bulk-inserts it: (stix_id, kind, attack_id, name, description, url, created,
# modified, revoked, deprecated, platforms, data); plain tuples, since executemany takes them as is
ParsedObject = tuple[
    str,
    str,
    str | None,
    str,
    str,
    str | None,
    str | None,
    str | None,
    bool,
    bool,
    list[str],
    dict[str, Any],
]
# (stix_id, relationship_type, source_ref, target_ref, description, revoked, deprecated)
ParsedRelationship = tuple[str, str, str, str, str, bool, bool]


@dataclass
class ParsedRelease:
    """One bundle read into rows ready for bulk insert."""

    source: str
    domain: str
    version: str
    stix_version: str
    sha256: str
    objects: list[ParsedObject]
    relationships: list[ParsedRelationship]
    technique_tactics: list[tuple[str, str]] = field(default_factory=list)
    citations: list[tuple[str, str, str]] = field(default_factory=list)  # owner, name, URL

    @property
    def version_key(self) -> int:
        return version_key(self.version)


def version_key(version: str) -> int:
    """Sortable integer for 'major.minor' (18.1 → 18001)."""
    m = _VERSION.match(version)
    if not m:
        raise InvalidInput(f"release version {version!r} is not of the form MAJOR.MINOR")
    return int(m.group(1)) * 1000 + int(m.group(2))


def domain_of(name: str) -> str:
    """Fold 'enterprise-attack' / 'Enterprise' into kbmap's domain name, or refuse it."""
    d = name.lower().removesuffix("-attack")
    if d not in DOMAINS:
        raise InvalidInput(f"unknown ATT&CK domain {name!r} (expected one of {', '.join(DOMAINS)})")
    return d


def _attack_ref(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    for ref in obj.get("external_references") or ():
        if ref.get("external_id") and str(ref.get("source_name", "")).startswith("mitre"):
            return ref["external_id"], ref.get("url")
    return None, None


def _cite(r: _Reading, sid: str, obj: dict[str, Any]) -> None:
    """Keep the URL of every source the object cites (not its ATT&CK id reference)."""
    for ref in obj.get("external_references") or ():
        if type(ref) is dict and not ref.get("external_id"):
            name, url = ref.get("source_name"), ref.get("url")
            if type(name) is str and type(url) is str and url:
                r.citations.append((sid, name, url))


def keep_alive(keep: list[object] | None, value: object) -> None:
    """Hand `value` to `keep` instead of letting it be freed: a process that exits right after
    (the CLI) saves the 0.1 s that freeing a million decoded objects costs."""
    if keep is not None:
        keep.append(value)


def parse_bundle(
    raw: bytes,
    *,
    source: str,
    version: str | None = None,
    max_bytes: int,
    sha256: str | None = None,
    keep: list[object] | None = None,
) -> ParsedRelease:
    """Read one STIX bundle; collect every structural problem, then fail once with all of them.

    `sha256` is the JSON's hash when the caller already has it (the bundle feed hashes on its
    reading thread). `keep`: see `keep_alive`.
    """
    data = maybe_gunzip(raw, limit=max_bytes, name=source)
    sha = sha256 or hashlib.sha256(data).hexdigest()  # of the JSON: .json and .json.gz compare
    doc = loads_json(data, name=source)
    keep_alive(keep, doc)
    objects = _bundle_objects(doc, source)
    reading = _Reading(source=source, spec=str(doc.get("spec_version") or ""))
    for n, obj in enumerate(objects):
        sid = _new_id(reading, n, obj)
        if sid is not None:
            _BUILDERS.get(obj["type"], _OTHER)(reading, sid, obj)
    return _release(reading, sha, version)


@dataclass
class _Reading:
    """What one pass over a bundle's objects collects."""

    source: str
    spec: str
    issues: list[Issue] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    objects: list[ParsedObject] = field(default_factory=list)
    relationships: list[ParsedRelationship] = field(default_factory=list)
    tactics: list[tuple[str, str]] = field(default_factory=list)
    collection: dict[str, Any] | None = None
    matrix_domains: list[str] = field(default_factory=list)
    object_domains: Counter[str] = field(default_factory=Counter)
    citations: list[tuple[str, str, str]] = field(default_factory=list)

    def problem(self, message: str) -> None:
        self.issues.append(Issue(message, Location(self.source, field="objects")))


def _bundle_objects(doc: Any, source: str) -> list[Any]:
    loc = Location(file=source)
    if not isinstance(doc, dict) or doc.get("type") != "bundle":
        raise InvalidInput("not a STIX bundle (no top-level object of type 'bundle')", loc)
    objects = doc.get("objects")
    if not isinstance(objects, list):
        raise InvalidInput("not a STIX bundle ('objects' is not a list)", loc)
    return objects


def _new_id(r: _Reading, n: int, obj: Any) -> str | None:
    """The object's STIX id when it has an id and a type and the id is new; else a problem."""
    sid = obj.get("id") if type(obj) is dict else None
    stype = obj.get("type") if sid else None
    if type(sid) is not str or type(stype) is not str or not sid or not stype:
        r.problem(f"object #{n} has no id or type")
        return None
    if sid in r.ids:
        r.problem(f"duplicate object id {sid}")
        return None
    r.ids.add(sid)
    return sid


def _add_relationship(r: _Reading, sid: str, obj: dict[str, Any]) -> None:
    """The hot path (80% of a bundle): inline type checks, details only on failure."""
    rtype, src, dst = obj.get("relationship_type"), obj.get("source_ref"), obj.get("target_ref")
    desc = obj.get("description")
    if (
        type(rtype) is str
        and type(src) is str
        and type(dst) is str
        and (desc is None or type(desc) is str)
    ):
        revoked = bool(obj.get("revoked", False))
        deprecated = bool(obj.get("x_mitre_deprecated", False))
        r.relationships.append((sid, rtype, src, dst, desc or "", revoked, deprecated))
        if desc:  # a relationship cites only in its text
            _cite(r, sid, obj)
        return
    why = shape_problem(obj, True) or "relationship_type, source_ref or target_ref is missing"
    r.problem(f"object {sid}: {why}")


Builder = Callable[[_Reading, str, dict[str, Any]], None]


def _checked(build: Builder) -> Builder:
    """Run `build` only on an object whose interpreted fields have the right JSON types."""

    def run(r: _Reading, sid: str, obj: dict[str, Any]) -> None:
        problem = shape_problem(obj, False)
        if problem:
            r.problem(f"object {sid}: {problem}")
            return
        if not r.spec and obj.get("spec_version"):
            r.spec = str(obj["spec_version"])
        build(r, sid, obj)

    return run


def _add_collection(r: _Reading, sid: str, obj: dict[str, Any]) -> None:
    """The release's own description (2.1): its version, not an object to store."""
    r.collection = obj


def _add_object(r: _Reading, sid: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Any object to store: its core as columns, everything else (prefix dropped) as `data`,
    which is returned for the type's own builder to add to."""
    for d in obj.get("x_mitre_domains") or ():
        r.object_domains[d] += 1
    stype = obj["type"]
    kind = KIND_BY_STIX_TYPE.get(stype, stype.replace("-", "_"))
    attack_id, url = _attack_ref(obj)
    _cite(r, sid, obj)
    fields: dict[str, Any] = {
        (k[8:] if k.startswith("x_mitre_") else k): v
        for k, v in obj.items()
        if k not in _COLUMN_FIELDS
    }
    r.objects.append(
        (
            sid,
            kind,
            attack_id,
            obj.get("name") or "",
            obj.get("description") or "",
            url,
            obj.get("created"),
            obj.get("modified"),
            bool(obj.get("revoked", False)),
            bool(obj.get("x_mitre_deprecated", False)),
            list(obj.get("x_mitre_platforms") or ()),
            fields,
        )
    )
    return fields


def _store_object(r: _Reading, sid: str, obj: dict[str, Any]) -> None:
    _add_object(r, sid, obj)


def _add_technique(r: _Reading, sid: str, obj: dict[str, Any]) -> None:
    """A technique sits under the tactics its MITRE kill-chain phases name."""
    _add_object(r, sid, obj)
    r.tactics += [
        (sid, p["phase_name"])
        for p in obj.get("kill_chain_phases") or ()
        if str(p.get("kill_chain_name", "")).startswith("mitre")
    ]


def _add_software(r: _Reading, sid: str, obj: dict[str, Any]) -> None:
    """Malware and tools are both software in ATT&CK's words; `data` keeps which."""
    _add_object(r, sid, obj)["software_type"] = obj["type"]


def _add_matrix(r: _Reading, sid: str, obj: dict[str, Any]) -> None:
    """A matrix names the bundle's domain (its ATT&CK id: enterprise-attack, ...)."""
    _add_object(r, sid, obj)
    attack_id, _url = _attack_ref(obj)
    if attack_id:
        r.matrix_domains.append(attack_id)


# STIX type → how one object of it is read; other types are stored as they are (`_OTHER`)
_BUILDERS: dict[str, Builder] = {
    "relationship": _add_relationship,
    "x-mitre-collection": _checked(_add_collection),
    "x-mitre-matrix": _checked(_add_matrix),
    "attack-pattern": _checked(_add_technique),
    "malware": _checked(_add_software),
    "tool": _checked(_add_software),
}
_OTHER = _checked(_store_object)


def _release(r: _Reading, sha: str, version: str | None) -> ParsedRelease:
    """Refuse the bundle with every problem found, or name its domain and version."""
    for sid, rtype, src, dst, *_ in r.relationships:
        for ref in (src, dst):
            if ref not in r.ids:
                r.problem(
                    f"relationship {sid} ({rtype}) points to missing object {ref or '(none)'}"
                )
    if r.issues:
        raise InvalidInput(f"{r.issues[0].message}", Location(file=r.source), issues=r.issues)
    domain = _detect_domain(r.matrix_domains, r.object_domains, r.source)
    found = _detect_version(r.collection, r.source, version)
    return ParsedRelease(
        source=r.source,
        domain=domain,
        version=found,
        stix_version=r.spec or "2.0",
        sha256=sha,
        objects=r.objects,
        relationships=r.relationships,
        technique_tactics=r.tactics,
        citations=r.citations,
    )


def _detect_domain(matrix_domains: list[str], object_domains: Counter[str], source: str) -> str:
    candidates = set(matrix_domains) or {d for d, _ in object_domains.most_common(1)}
    if len(candidates) != 1:
        raise (
            InvalidInput(
                "cannot tell the ATT&CK domain: the bundle has no matrix or x_mitre_domains",
                Location(file=source),
            )
            if not candidates
            else InvalidInput(f"bundle mixes domains {sorted(candidates)}", Location(file=source))
        )
    try:
        return domain_of(candidates.pop())
    except InvalidInput as exc:
        raise InvalidInput(exc.message, Location(file=source)) from exc


def _detect_version(collection: dict[str, Any] | None, source: str, given: str | None) -> str:
    """The collection's version, else a MITRE file name's, else the caller's; a caller's that
    contradicts either is refused, since storing 18.1's objects as 17.1 is a silent wrong answer."""
    loc = Location(file=source)
    if collection and collection.get("x_mitre_version"):
        found = str(collection["x_mitre_version"])
        if given and given != found:
            raise InvalidInput(
                f"--version {given} contradicts the bundle's collection ({found})", loc
            )
        version_key(found)
        return found
    m = _FILE_NAME.search(source)
    named = f"{int(m.group(2))}.{int(m.group(3))}" if m else None
    if given and named and given != named:
        raise InvalidInput(f"--version {given} contradicts the file name ({named})", loc)
    if given:
        version_key(given)
        return given
    if named:
        return named
    raise InvalidInput(
        "cannot tell the ATT&CK release: no x-mitre-collection object and the file name is not "
        "of the form <domain>-attack-<version>.json; pass --version",
        loc,
    )
