"""Pure: what a TAXII 2.1 server's answers say about ATT&CK releases. No network, no database.

Collections picked by id or domain, envelopes checked, the release a collection's
`x-mitre-collection` object names, and that release assembled into one STIX bundle from exactly
the objects (and versions) its `x_mitre_contents` lists. Used by `taxii.py`, tested without a
server.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from app.attack.stix import version_key
from app.core.errors import InvalidInput, Location, NotFound
from app.refresh.index import _domain_from_name
from app.refresh.service import _wanted_domains

COLLECTION_TYPE = "x-mitre-collection"


@dataclass(frozen=True)
class Found:
    """One collection of an API root as the server lists it."""

    id: str
    title: str
    url: str  # the collection's URL (objects are under `objects/`)
    can_read: bool = True
    named: str | None = None  # the domain its x-mitre-collection object names (`named_domain`)

    def info(self) -> dict[str, Any]:
        """What taxii2client's Collection needs to not ask the server again."""
        return {"id": self.id, "title": self.title, "can_read": self.can_read, "can_write": False}

    @property
    def domain(self) -> str | None:
        """The title's domain ("ICS ATT&CK"), else the one its collection object names."""
        return _domain_from_name(self.title) or self.named

    def label(self) -> str:
        return f"{self.id} ({self.title})"


@dataclass(frozen=True)
class Offer:
    """What a collection holds now, read from its newest x-mitre-collection object."""

    found: Found
    domain: str
    version: str
    modified: str | None

    @property
    def objects_url(self) -> str:
        return self.found.url + "objects/"


def pick_collections(
    found: list[Found], *, collection: str | None, domains: list[str] | None
) -> list[Found]:
    """`--collection` names one; `--domain` picks by title; neither: every ATT&CK collection.
    An id or domain the server does not have is an error listing what it has."""
    listing = ", ".join(f.label() for f in found) or "none"
    if collection is not None:
        chosen = [f for f in found if f.id == collection]
        if not chosen:
            raise NotFound(f"the server has no collection {collection!r}; it has: {listing}")
        return chosen
    attack = [f for f in found if f.domain]
    if not domains:
        if not attack:
            raise NotFound(f"the server has no ATT&CK collection; it has: {listing}")
        return attack
    wanted = _wanted_domains(domains)
    missing = [d for d in wanted if not any(f.domain == d for f in attack)]
    if missing:
        raise NotFound(
            f"the server has no {', '.join(missing)} ATT&CK collection; it has: {listing}"
        )
    return [f for f in attack if f.domain in wanted]


def read_envelope(doc: Any, where: str) -> tuple[list[dict[str, Any]], bool, str | None]:
    """A TAXII envelope → (objects, more, next); anything else is refused, naming the page."""
    if not isinstance(doc, dict):
        raise InvalidInput("not a TAXII envelope (a JSON object)", Location(file=where))
    objects, more, nxt = doc.get("objects", []), doc.get("more", False), doc.get("next")
    if not isinstance(objects, list) or not isinstance(more, bool):
        raise InvalidInput("not a TAXII envelope ('objects' list, 'more' flag)", Location(where))
    if nxt is not None and not isinstance(nxt, str | int):
        raise InvalidInput("not a TAXII envelope ('next' is not a string)", Location(file=where))
    for n, obj in enumerate(objects):
        if not (isinstance(obj, dict) and _text(obj.get("type")) and _text(obj.get("id"))):
            raise InvalidInput(
                f"objects[{n}] is not a STIX object (no type and id)", Location(where)
            )
    return objects, more, None if nxt is None else str(nxt)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def newest_collection_object(objects: list[dict[str, Any]], where: str) -> dict[str, Any]:
    """The release the collection holds: its x-mitre-collection object of latest `modified`."""
    found = [o for o in objects if o.get("type") == COLLECTION_TYPE]
    if not found:
        raise InvalidInput(
            "the collection has no x-mitre-collection object: not an ATT&CK release",
            Location(file=where),
        )
    return max(found, key=lambda o: str(o.get("modified") or ""))


def named_domain(objects: list[dict[str, Any]]) -> str | None:
    """The domain a collection's newest x-mitre-collection object names; None without one (a
    collection that is not ATT&CK) or when its name is no ATT&CK domain."""
    found = [o for o in objects if o.get("type") == COLLECTION_TYPE]
    if not found:
        return None
    newest = max(found, key=lambda o: str(o.get("modified") or ""))
    return _domain_from_name(str(newest.get("name") or ""))


def offer_of(found: Found, obj: dict[str, Any], asked: list[str] | None) -> Offer:
    """The domain and version a collection offers; a title, collection object or `--domain`
    that disagree is an error naming both (a wrong-domain collection is never loaded)."""
    where = Location(file=found.url)
    version = obj.get("x_mitre_version")
    if not isinstance(version, str):
        raise InvalidInput("the x-mitre-collection object has no x_mitre_version", where)
    version_key(version)
    named = _domain_from_name(str(obj.get("name") or ""))
    if found.domain and named and found.domain != named:
        raise InvalidInput(
            f"collection {found.label()} is titled {found.domain}, but its x-mitre-collection "
            f"object is {obj.get('name')!r} ({named})",
            where,
        )
    domain = found.domain or named
    if domain is None:
        raise InvalidInput(f"cannot tell the ATT&CK domain of collection {found.label()}", where)
    wanted = _wanted_domains(asked) if asked else None
    if wanted and domain not in wanted:
        raise InvalidInput(
            f"collection {found.label()} holds {domain} {version}, not {' or '.join(wanted)}",
            where,
        )
    return Offer(found, domain, version, str(obj["modified"]) if obj.get("modified") else None)


def assemble(objects: list[dict[str, Any]], offer: Offer) -> bytes:
    """The release as one STIX bundle: its collection object, every object its contents list at
    the listed version, and the marking definitions they cite; a listed object the server did
    not send (at that version) is an error, since a partial release is a wrong answer."""
    where = Location(file=offer.objects_url)
    by_version = {(o["id"], o.get("modified") or o.get("created")): o for o in objects}
    collection = newest_collection_object(objects, offer.objects_url)
    if collection.get("x_mitre_version") != offer.version:
        raise InvalidInput(
            f"the collection changed during the refresh: it now holds "
            f"{collection.get('x_mitre_version')}, not {offer.version}; run the refresh again",
            where,
        )
    chosen, missing = [collection], []
    for ref in _contents(collection, where):
        obj = by_version.get((ref.get("object_ref"), ref.get("object_modified")))
        (chosen.append(obj) if obj is not None else missing.append(ref))
    if missing:
        first = ", ".join(
            f"{r.get('object_ref')} at {r.get('object_modified')}" for r in missing[:3]
        )
        raise InvalidInput(
            f"the x-mitre-collection lists {len(missing)} objects the server did not send at "
            f"that version (e.g. {first})",
            where,
        )
    chosen += _markings(objects, chosen)
    name = f"{offer.found.url}#{offer.version}"
    bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid5(uuid.NAMESPACE_URL, name)}"}
    return orjson.dumps({**bundle, "objects": chosen})


def _contents(collection: dict[str, Any], where: Location) -> list[dict[str, Any]]:
    contents = collection.get("x_mitre_contents")
    if not isinstance(contents, list) or not all(isinstance(r, dict) for r in contents):
        raise InvalidInput("the x-mitre-collection object has no x_mitre_contents list", where)
    return contents


def _markings(objects: list[dict[str, Any]], chosen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Marking definitions are immutable (no `modified`), so the contents list leaves them out;
    the release's objects cite them, and the index's bundle carries them (each once)."""
    cited = {r for o in chosen for r in o.get("object_marking_refs") or () if isinstance(r, str)}
    found = {o["id"]: o for o in objects if o["type"] == "marking-definition" and o["id"] in cited}
    return list(found.values())
