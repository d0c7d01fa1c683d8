"""Refresh flow: MITRE's index → choose new releases → download → verify → ingest, all or nothing.

Every download is verified before anything is written (it is a STIX bundle, of the domain and
version the index promised, with the manifest's sha256 where `kb/releases.yaml` pins one); then all
of them are written in one short transaction, so a failure anywhere leaves the database as it was
and no write lock is held while the network is slow.

Hashes are of the uncompressed JSON: that is what MITRE's index URLs serve (any gzip transfer
encoding is undone by the HTTP client), the git blob in `attack-stix-data`, and what a `.json.gz`
copy of it decompresses to, so the same pin checks all three.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from app.attack import service as attack_service
from app.attack.ingest import write_release
from app.attack.stix import DOMAINS, ParsedRelease, domain_of, parse_bundle, version_key
from app.core.config import MITRE_INDEX_URL, Settings
from app.core.db import transaction
from app.core.download import fetch
from app.core.errors import InvalidInput, Location, NotFound
from app.core.limits import maybe_gunzip, read_stream_bounded
from app.core.progress import Step
from app.refresh.index import (
    CollectionIndex,
    IndexEntry,
    ManifestEntry,
    parse_index,
    parse_manifest,
)

MAX_INDEX_BYTES = 5 * 1024 * 1024  # MITRE's index is ~30 kB; anything this big is not an index
MANIFEST_NAME = "releases.yaml"


@dataclass(frozen=True)
class Fetched:
    """A release the refresh loaded (or, in a dry run, would load)."""

    domain: str
    version: str
    url: str
    modified: str | None = None
    sha256: str | None = None  # of the uncompressed JSON; None in a dry run
    pinned: bool = False  # the manifest pins a sha256 for it (and, once fetched, it matched)
    objects: int | None = None
    relationships: int | None = None


@dataclass(frozen=True)
class Skipped:
    """A wanted domain the refresh left alone, and why."""

    domain: str
    version: str | None
    reason: str


@dataclass(frozen=True)
class RefreshReport:
    """What one refresh did; `summary` is the one line a cron job logs."""

    index: str
    dry_run: bool
    fetched: list[Fetched] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    summary: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_index(source: str) -> bool:
    return source.rstrip("/").endswith("index.json")


def refresh(
    engine: Engine,
    settings: Settings,
    *,
    index_url: str | None = None,
    index_file: str | Path | None = None,
    domains: list[str] | None = None,
    version: str | None = None,
    dry_run: bool = False,
    step: Step | None = None,
    download_backoff: float = 0.5,
) -> RefreshReport:
    """Load the newest (or the named) release of each wanted domain that is not loaded yet."""
    if index_url and index_file:
        raise InvalidInput("give either an index URL or an index file, not both")
    if index_url and not index_url.startswith(("http://", "https://")):
        raise InvalidInput(
            "the index URL must be http(s); use an index file for a path", Location(file=index_url)
        )
    wanted = _wanted_domains(domains)
    if version is not None:
        version_key(version)  # refuse '18' or 'latest' before any download
    manifest = _read_manifest(settings)
    ready: dict[str, Verified] = {}  # releases downloaded already (a bundle source)
    if index_url or index_file or not _is_bundle_url(settings.attack_source):
        source = str(index_file) if index_file else index_url or _default_index(settings)
        index = _read_index(source, settings, backoff=download_backoff, step=step)
    else:
        source = settings.attack_source
        bundle = _bundle_source(source, settings, manifest, backoff=download_backoff, step=step)
        index, ready[source] = CollectionIndex(source, (bundle.entry,)), bundle
        wanted = wanted if domains else [bundle.entry.domain]
    plan, skipped = choose_releases(engine, index, wanted, version)

    if dry_run:
        fetched = [
            Fetched(e.domain, e.version, e.url, e.modified, pinned=_pin(manifest, e) is not None)
            for e in plan
        ]
        return refresh_report(source, True, fetched, skipped)

    verified = [
        ready.get(e.url)
        or _download_and_verify(e, settings, manifest, backoff=download_backoff, step=step)
        for e in plan
    ]
    fetched = write_verified(engine, verified, skipped, step=step)
    return refresh_report(source, False, fetched, skipped)


def _wanted_domains(domains: list[str] | None) -> list[str]:
    if not domains:
        return list(DOMAINS)
    out: list[str] = []
    for d in domains:
        name = domain_of(d)
        if name not in out:
            out.append(name)
    return out


def _is_bundle_url(source: str) -> bool:
    return source.startswith(("http://", "https://")) and not is_index(source)


def _default_index(settings: Settings) -> str:
    """KBMAP_ATTACK_SOURCE when it names an index (URL or file), else MITRE's own: a local
    bundle or folder is a first load, not a feed (a bundle URL is one: see `_bundle_source`)."""
    return settings.attack_source if is_index(settings.attack_source) else MITRE_INDEX_URL


def _read_index(
    source: str, settings: Settings, *, backoff: float, step: Step | None
) -> CollectionIndex:
    if step:
        step(f"reading the release index {source}")
    if source.startswith(("http://", "https://")):
        raw = fetch(
            source,
            max_bytes=MAX_INDEX_BYTES,
            timeout=settings.download_timeout,
            retries=settings.download_retries,
            backoff=backoff,
            deadline=settings.download_deadline,
        )
    else:
        try:
            with open(source, "rb") as fh:
                raw = read_stream_bounded(fh, limit=MAX_INDEX_BYTES, name=source)
        except FileNotFoundError as exc:
            raise NotFound("no such index file", Location(file=source)) from exc
    return parse_index(raw, source=source)


def choose_releases(
    engine: Engine, index: CollectionIndex, wanted: list[str], version: str | None
) -> tuple[list[IndexEntry], list[Skipped]]:
    """Per domain: the named or newest release of the index, unless it (or newer) is loaded."""
    plan: list[IndexEntry] = []
    skipped: list[Skipped] = []
    with Session(engine) as session:
        for domain in wanted:
            entry = index.find(domain, version)
            if entry is None:
                what = f"{domain} {version}" if version else f"{domain} release"
                skipped.append(Skipped(domain, version, f"the index lists no {what}"))
                continue
            if attack_service.find_release(session, domain=domain, version=entry.version):
                skipped.append(Skipped(domain, entry.version, "already loaded"))
                continue
            newest = attack_service.find_release(session, domain=domain)
            if version is None and newest is not None and newest.version_key > entry.version_key:
                skipped.append(
                    Skipped(domain, entry.version, f"a newer release ({newest.version}) is loaded")
                )
                continue
            plan.append(entry)
    if version is not None and not plan and all(s.reason.startswith("the index") for s in skipped):
        raise NotFound(
            f"the index lists no release {version} of {', '.join(wanted)}",
            Location(file=index.source),
        )
    return plan, skipped


def _read_manifest(settings: Settings) -> dict[tuple[str, str], ManifestEntry]:
    """The pinned hashes; no manifest file means nothing is pinned, not an error."""
    path = settings.kb_dir / MANIFEST_NAME
    if not path.is_file():
        return {}
    return parse_manifest(
        path.read_bytes(), source=str(path), max_aliases=settings.limits.max_yaml_aliases
    )


def _pin(manifest: dict[tuple[str, str], ManifestEntry], entry: IndexEntry) -> str | None:
    found = manifest.get((entry.domain, entry.version))
    return found.sha256 if found else None


@dataclass(frozen=True)
class Verified:
    entry: IndexEntry
    parsed: ParsedRelease
    pinned: bool


def _download_and_verify(
    entry: IndexEntry,
    settings: Settings,
    manifest: dict[tuple[str, str], ManifestEntry],
    *,
    backoff: float,
    step: Step | None,
) -> Verified:
    """Download one release and refuse it unless it is exactly what the index and manifest say."""
    label = f"{entry.domain} {entry.version}"
    parsed = _download_parsed(entry.url, label, settings, backoff=backoff, step=step)
    return _checked(entry, parsed, manifest)


def _bundle_source(
    url: str,
    settings: Settings,
    manifest: dict[tuple[str, str], ManifestEntry],
    *,
    backoff: float,
    step: Step | None,
) -> Verified:
    """KBMAP_ATTACK_SOURCE names a bundle URL: that bundle, as given, is the one release on
    offer (never MITRE's index instead); what it holds is known once it is downloaded."""
    parsed = _download_parsed(url, url, settings, backoff=backoff, step=step)
    return _checked(IndexEntry(parsed.domain, parsed.version, url), parsed, manifest)


def _download_parsed(
    url: str, label: str, settings: Settings, *, backoff: float, step: Step | None
) -> ParsedRelease:
    """One bundle downloaded (within the deadline) and parsed; nothing checked yet."""
    limit = settings.limits.max_bundle_bytes

    def progress(size: int, total: int | None) -> None:
        if step:
            step(f"downloading {label}", done=size, total=total)  # the bar shows how far

    if step:
        step(f"downloading {label}")
    raw = fetch(
        url,
        max_bytes=limit,
        timeout=settings.download_timeout,
        retries=settings.download_retries,
        backoff=backoff,
        deadline=settings.download_deadline,
        progress=progress if step else None,
    )
    body = maybe_gunzip(raw, limit=limit, name=url)
    del raw
    if step:
        step(f"verifying {label}")
    return parse_bundle(body, source=url, max_bytes=limit)


def _checked(
    entry: IndexEntry, parsed: ParsedRelease, manifest: dict[tuple[str, str], ManifestEntry]
) -> Verified:
    """The download is the release the entry promised, with the manifest's hash if it pins one."""
    label, found = f"{entry.domain} {entry.version}", f"{parsed.domain} {parsed.version}"
    if found != label:
        raise InvalidInput(
            f"the index promised {label}, but the download holds {found}", Location(file=entry.url)
        )
    pin = _pin(manifest, entry)
    if pin is not None and pin != parsed.sha256:
        raise InvalidInput(
            f"sha256 of {label} is {parsed.sha256}, but the release manifest pins {pin}",
            Location(file=entry.url),
        )
    return Verified(entry, parsed, pinned=pin is not None)


def write_verified(
    engine: Engine, verified: list[Verified], skipped: list[Skipped], *, step: Step | None
) -> list[Fetched]:
    """Write every verified release in one transaction: all of them or none."""
    fetched: list[Fetched] = []
    if not verified:
        return fetched
    with transaction(engine) as session:
        for v in verified:
            p = v.parsed
            if attack_service.find_release(session, domain=p.domain, version=p.version):
                skipped.append(Skipped(p.domain, p.version, "loaded meanwhile by another process"))
                continue
            if step:
                step(f"writing {p.domain} {p.version}")
            write_release(session.connection(), p)
            fetched.append(
                Fetched(
                    p.domain,
                    p.version,
                    v.entry.url,
                    v.entry.modified,
                    p.sha256,
                    v.pinned,
                    len(p.objects),
                    len(p.relationships),
                )
            )
    return fetched


def refresh_report(
    index: str, dry_run: bool, fetched: list[Fetched], skipped: list[Skipped]
) -> RefreshReport:
    names = ", ".join(f"{f.domain} {f.version}" for f in fetched)
    if dry_run:
        line = f"dry run: would fetch {names}" if fetched else "dry run: nothing new"
    else:
        line = f"fetched {names}" if fetched else "nothing new"
    current = [f"{s.domain} {s.version}" for s in skipped if s.reason == "already loaded"]
    if current:
        line += f" ({', '.join(current)} already loaded)"
    return RefreshReport(
        index=index, dry_run=dry_run, fetched=fetched, skipped=skipped, summary=line
    )
