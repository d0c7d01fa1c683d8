"""Pure readers for what names ATT&CK releases: MITRE's collection index and kbmap's manifest.

The index (`attack-stix-data/index.json`) is how a refresh learns that a release exists and where
to download it; the manifest (`kb/releases.yaml`) pins the sha256 of releases we have checked.
Bytes in, records out: no network, no database, so both are tested without a server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from app.attack.stix import DOMAINS, version_key
from app.core.bounded_yaml import load_yaml_documents
from app.core.errors import InvalidInput, Issue, Location
from app.core.limits import loads_json

_URL_FILE = re.compile(r"(enterprise|mobile|ics)-attack-[^/]*\.json(?:\.gz)?$")
_RELEASE = re.compile(r"^\d+\.\d+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class IndexEntry:
    """One downloadable release as the index promises it."""

    domain: str
    version: str
    url: str
    modified: str | None = None

    @property
    def version_key(self) -> int:
        return version_key(self.version)


@dataclass(frozen=True)
class CollectionIndex:
    """Every release the index lists, plus why any listed item was left out (e.g. betas)."""

    source: str
    entries: tuple[IndexEntry, ...]
    ignored: tuple[str, ...] = ()

    def releases(self, domain: str) -> list[IndexEntry]:
        """The domain's releases, newest first."""
        found = [e for e in self.entries if e.domain == domain]
        return sorted(found, key=lambda e: e.version_key, reverse=True)

    def find(self, domain: str, version: str | None = None) -> IndexEntry | None:
        """The named release, or the domain's newest when no version is given."""
        for entry in self.releases(domain):
            if version is None or entry.version == version:
                return entry
        return None


def _domain_from_name(name: str) -> str | None:
    """'Enterprise ATT&CK' → enterprise; None for a collection kbmap does not know."""
    word = name.strip().lower().removesuffix("att&ck").strip().removesuffix("-attack")
    return word if word in DOMAINS else None


def _domain_from_url(url: str) -> str | None:
    """MITRE names its files `<domain>-attack-<version>.json`; the name vouches for the domain."""
    m = _URL_FILE.search(url.split("?", 1)[0])
    return m.group(1) if m else None


def parse_index(raw: bytes, *, source: str) -> CollectionIndex:
    """Read the index; collect every structural problem, then fail once naming the index.

    Pre-releases (`11.2-beta`) and collections of unknown domains are skipped, not errors:
    MITRE lists them legitimately, and a cron refresh must not break when MITRE adds one.
    """
    doc = loads_json(raw, name=source)
    collections = doc.get("collections") if isinstance(doc, dict) else None
    if not isinstance(collections, list):
        raise InvalidInput(
            "not an ATT&CK collection index (no 'collections' list)", Location(file=source)
        )
    reading = _IndexReading(source)
    for ci, coll in enumerate(collections):
        reading.collection(f"collections[{ci}]", coll)
    issues = reading.issues
    if issues:
        raise InvalidInput(
            f"bad collection index: {issues[0].message}", issues[0].location, issues=issues
        )
    if not reading.entries:
        raise InvalidInput("the collection index lists no ATT&CK release", Location(file=source))
    return CollectionIndex(
        source=source, entries=tuple(reading.entries), ignored=tuple(reading.ignored)
    )


@dataclass
class _IndexReading:
    """What reading an index collects: problems (all reported at once), entries, skipped items."""

    source: str
    issues: list[Issue] = field(default_factory=list)
    entries: list[IndexEntry] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)

    def problem(self, message: str, where: str) -> None:
        self.issues.append(Issue(message, Location(file=self.source, field=where)))

    def collection(self, where: str, coll: object) -> None:
        if not isinstance(coll, dict) or not isinstance(coll.get("versions"), list):
            self.problem("collection has no 'versions' list", where)
            return
        name = str(coll.get("name") or "")
        named = _domain_from_name(name)
        for vi, item in enumerate(coll["versions"]):
            self.version(f"{where}.versions[{vi}]", item, name=name or where, named=named)

    def version(self, at: str, item: object, *, name: str, named: str | None) -> None:
        """One version entry: an entry, a skipped item (betas, unknown domains) or a problem."""
        if not isinstance(item, dict):
            self.problem("version entry is not an object", at)
            return
        version, url, modified = item.get("version"), item.get("url"), item.get("modified")
        if not isinstance(version, str) or not version:
            self.problem("version entry has no 'version' string", f"{at}.version")
            return
        if not isinstance(url, str) or not url:
            self.problem("version entry has no 'url' string", f"{at}.url")
            return
        from_url = _domain_from_url(url)
        if named and from_url and named != from_url:
            self.problem(f"collection {name!r} lists a {from_url} file: {url}", f"{at}.url")
            return
        domain = named or from_url
        if domain is None:
            self.ignored.append(f"{name} {version}: not an ATT&CK domain kbmap knows")
        elif not _RELEASE.match(version):
            self.ignored.append(f"{domain} {version}: not a MAJOR.MINOR release")
        elif (domain, version) in self.seen:
            self.problem(f"{domain} {version} is listed twice", f"{at}.version")
        else:
            self.seen.add((domain, version))
            self.entries.append(
                IndexEntry(domain, version, url, str(modified) if modified else None)
            )


@dataclass(frozen=True)
class ManifestEntry:
    """A release kbmap has checked: where it lives and, when known, the sha256 of its JSON."""

    domain: str
    version: str
    url: str | None = None
    sha256: str | None = None


def parse_manifest(
    text: bytes, *, source: str, max_aliases: int = 100
) -> dict[tuple[str, str], ManifestEntry]:
    """Read `kb/releases.yaml` into (domain, version) → entry; versions must be quoted strings.

    A YAML float (`18.10` → 18.1) would silently pin the wrong release, so it is refused.
    """
    docs = load_yaml_documents(text, name=source, max_aliases=max_aliases)
    doc: Any = docs[0] if docs else None
    items = doc.get("releases") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise InvalidInput("release manifest has no 'releases' list", Location(file=source))
    issues: list[Issue] = []
    out: dict[tuple[str, str], ManifestEntry] = {}
    for n, item in enumerate(items):
        where = f"releases[{n}]"
        if not isinstance(item, dict):
            issues.append(Issue("entry is not a mapping", Location(source, field=where)))
            continue
        domain, version = item.get("domain"), item.get("version")
        url, sha = item.get("url"), item.get("sha256")
        if domain not in DOMAINS:
            issues.append(
                Issue(f"unknown domain {domain!r}", Location(source, field=f"{where}.domain"))
            )
            continue
        if not isinstance(version, str) or not _RELEASE.match(version):
            issues.append(
                Issue(
                    f"version {version!r} is not a quoted 'MAJOR.MINOR' string",
                    Location(source, field=f"{where}.version"),
                )
            )
            continue
        if sha is not None and not (isinstance(sha, str) and _SHA256.match(sha)):
            issues.append(
                Issue(
                    "sha256 is not a quoted string of 64 lowercase hex digits",
                    Location(source, field=f"{where}.sha256"),
                )
            )
            continue
        if url is not None and not isinstance(url, str):
            issues.append(Issue("url is not a string", Location(source, field=f"{where}.url")))
            continue
        if (domain, version) in out:
            issues.append(
                Issue(
                    f"{domain} {version} is listed twice",
                    Location(source, field=f"{where}.version"),
                )
            )
            continue
        out[(domain, version)] = ManifestEntry(domain, version, url, sha)
    if issues:
        raise InvalidInput(
            f"bad release manifest: {issues[0].message}", issues[0].location, issues=issues
        )
    return out
