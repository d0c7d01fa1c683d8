"""`kbmap refresh --taxii`: ATT&CK releases from a TAXII 2.1 server (attack-taxii.mitre.org).

MITRE serves one collection per domain holding the current release's objects, among them the
`x-mitre-collection` object naming the release (`x_mitre_version`) and every object in it with its
version (`x_mitre_contents`: ref + modified). So a refresh first asks each collection for that one
object (`match[type]=x-mitre-collection`): a release already loaded means "up to date" after a
few small requests, whatever the server's size. Only a new release is paged in full; the release
is then assembled from exactly the contents its collection object lists (at those versions, plus
the marking definitions they cite), verified like an index download (a STIX bundle of the domain
and version its collection says) and written through the index refresh's one transaction.

Why not `added_after` for "what is new": MITRE's server compares `added_after` with each object's
`created` (its filter service), not with when it was added, so a release that only modifies
objects, the collection object itself included (created 2018), is invisible to it; a refresh
trusting it would say "up to date" wrongly. The collection object's version names a release on
every server, and asking for it is one request for one object (0.2 MB for ICS, its contents list
being most of it; a few MB for Enterprise), never the release.
A new release is fetched in full rather than overlaid on the stored one: the stored rows keep
ATT&CK's fields, not the STIX objects byte for byte, and TAXII's `match[version]` cannot say
"the versions this release lists" in one request.

The network side is taxii2client's protocol model (API roots, collections, `get_objects`; the
`as_pages` paging protocol, looped here with bounds) over one connection of ours: every GET goes
through `core.download.fetch` (timeouts, retries, size caps, the deadline) with the TAXII media
type checked and basic auth, so a hostile server is bounded like the index refresh's downloads.
What the answers say is read by `taxii_release.py` (pure).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin

from app.attack.stix import parse_bundle
from app.core.config import Settings
from app.core.download import fetch
from app.core.errors import (
    Forbidden,
    InvalidInput,
    Location,
    Unauthorized,
    Unavailable,
)
from app.core.limits import loads_json
from app.core.progress import Step
from app.refresh.index import CollectionIndex, IndexEntry
from app.refresh.service import (
    Fetched,
    RefreshReport,
    Verified,
    choose_releases,
    refresh_report,
    write_verified,
)
from app.refresh.taxii_release import (
    COLLECTION_TYPE,
    Found,
    Offer,
    assemble,
    named_domain,
    newest_collection_object,
    offer_of,
    pick_collections,
    read_envelope,
)

if TYPE_CHECKING:
    import httpx
    from sqlalchemy import Engine

TAXII_MEDIA = "application/taxii+json;version=2.1"
PAGE_OBJECTS = 1000  # asked per page; a server may send fewer (medallion: its max_page_size)
MAX_RESOURCE_BYTES = 5 * 1024 * 1024  # a discovery or API root document: a few kB


# ---- the connection: every GET bounded -----------------------------------------------------


class Connection:
    """taxii2client's `conn` (its `get` and `close`): each GET through `core.download.fetch`
    with the TAXII media type, basic auth, one deadline for the whole refresh and one byte budget
    for the pages of a release (no bigger than a bundle)."""

    def __init__(
        self, settings: Settings, *, user: str | None, password: str | None, backoff: float
    ) -> None:
        import httpx

        self.settings, self.backoff = settings, backoff
        self.ends = time.monotonic() + settings.download_deadline
        self.budget = settings.limits.max_bundle_bytes
        self.http = httpx.Client(
            auth=httpx.BasicAuth(user, password or "") if user else None,
            headers={"Accept": TAXII_MEDIA},
            timeout=httpx.Timeout(settings.download_timeout),
            follow_redirects=True,
            event_hooks={"response": [_check_response]},
        )

    def get(
        self, url: str, headers: dict[str, str] | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        target = f"{url}?{urlencode(params, doseq=True)}" if params else url
        left = self.ends - time.monotonic()
        if left <= 0:
            raise Unavailable(
                f"the TAXII refresh did not finish within {self.settings.download_deadline:g} s "
                "(KBMAP_DOWNLOAD_DEADLINE)",
                Location(file=target),
            )
        raw = fetch(
            target,
            max_bytes=max(1, self.budget),
            timeout=self.settings.download_timeout,
            retries=self.settings.download_retries,
            backoff=self.backoff,
            deadline=left,
            client=self.http,
        )
        self.budget -= len(raw)
        return loads_json(raw, name=target)

    def resource(self, url: str) -> dict[str, Any]:
        """A small TAXII resource (discovery, API root): a JSON object of a few kB."""
        budget, self.budget = self.budget, MAX_RESOURCE_BYTES
        try:
            doc = self.get(url)
        finally:
            self.budget = budget
        if not isinstance(doc, dict):
            raise InvalidInput("not a TAXII resource (a JSON object)", Location(file=url))
        return doc

    def close(self) -> None:
        self.http.close()


def _check_response(response: httpx.Response) -> None:
    """Refused credentials and answers that are not TAXII stop at the headers, body unread."""
    where = Location(file=str(response.request.url))
    if response.status_code == 401:
        raise Unauthorized(
            "the TAXII server refused the credentials (check --user and KBMAP_TAXII_PASSWORD)",
            where,
        )
    if response.status_code == 403:
        raise Forbidden("the TAXII server does not let these credentials read this", where)
    kind = response.headers.get("content-type", "").replace(" ", "").lower()
    if response.status_code == 200 and kind.split(";")[0] != "application/taxii+json":
        raise InvalidInput(
            f"the server answered {kind or 'no media type'}, not {TAXII_MEDIA}: not a TAXII 2.1 "
            "server",
            where,
        )


# ---- the flow ------------------------------------------------------------------------------


def refresh_taxii(
    engine: Engine,
    settings: Settings,
    *,
    url: str,
    collection: str | None = None,
    domains: list[str] | None = None,
    user: str | None = None,
    dry_run: bool = False,
    step: Step | None = None,
    download_backoff: float = 0.5,
    page_size: int = PAGE_OBJECTS,
) -> RefreshReport:
    """Load the release each chosen collection holds unless it (or newer) is loaded; all or
    nothing across collections, like the index refresh."""
    conn = _connect(url, settings, user=user, backoff=download_backoff)
    try:
        with _taxii_errors(url):
            listed = _collections(conn, url, step)
            if collection is None:  # picked by domain: titles that say none are asked
                listed = [_named(conn, f, page_size) for f in listed]
            found = pick_collections(listed, collection=collection, domains=domains)
            current = [_offer(conn, f, domains, page_size, step) for f in found]
            index = CollectionIndex(url, tuple(_entry(o) for o in current))
            plan, skipped = choose_releases(
                engine, index, sorted({o.domain for o in current}), None
            )
            by_url = {o.objects_url: o for o in current}
            if dry_run:
                return refresh_report(url, True, [_dry(by_url[e.url]) for e in plan], skipped)
            verified = [_download(conn, by_url[e.url], e, settings, page_size, step) for e in plan]
        fetched = write_verified(engine, verified, skipped, step=step)
    finally:
        conn.close()
    report = refresh_report(url, False, fetched, skipped)
    if fetched:
        return report
    return replace(report, summary=report.summary.replace("nothing new", "up to date", 1))


def _connect(url: str, settings: Settings, *, user: str | None, backoff: float) -> Connection:
    if not url.startswith(("http://", "https://")):
        raise InvalidInput("the TAXII URL must be http(s)", Location(file=url))
    if "@" in url.split("/", 3)[2]:
        raise InvalidInput(
            "credentials do not belong in the TAXII URL: use --user and KBMAP_TAXII_PASSWORD"
        )
    secret = settings.taxii_password
    if user and secret is None:
        raise InvalidInput("--user needs the password in KBMAP_TAXII_PASSWORD")
    password = secret.get_secret_value() if secret is not None else None
    return Connection(settings, user=user, password=password, backoff=backoff)


def _collections(conn: Connection, url: str, step: Step | None) -> list[Found]:
    """A discovery URL lists API roots, an API root lists collections: both are accepted."""
    from taxii2client.v21 import ApiRoot

    if step:
        step(f"asking {url} for its collections")
    doc = conn.resource(url)
    roots = doc.get("api_roots") if "api_roots" in doc else [url]
    if not isinstance(roots, list) or not roots or not all(isinstance(r, str) for r in roots):
        raise InvalidInput("the TAXII discovery lists no API root", Location(file=url))
    found: list[Found] = []
    for root_url in roots:
        root = ApiRoot(urljoin(url, root_url), conn=conn)
        found += [Found(str(c.id), str(c.title), c.url, bool(c.can_read)) for c in root.collections]
    return found


def _named(conn: Connection, found: Found, page_size: int) -> Found:
    """A collection titled without its domain ("ATT&CK for ICS", "Industrial") is asked for its
    x-mitre-collection object, whose name says it; one small request, and only for those."""
    if found.domain is not None or not found.can_read:
        return found
    objects = [o for page in _pages(conn, found, page_size, type=COLLECTION_TYPE) for o in page]
    return replace(found, named=named_domain(objects))


def _offer(
    conn: Connection, found: Found, asked: list[str] | None, page_size: int, step: Step | None
) -> Offer:
    """The release a collection holds now, from its x-mitre-collection object alone."""
    if step:
        step(f"asking {found.title} for its release")
    objects = [o for page in _pages(conn, found, page_size, type=COLLECTION_TYPE) for o in page]
    return offer_of(found, newest_collection_object(objects, found.url), asked)


def _pages(
    conn: Connection, found: Found, page_size: int, **filters: Any
) -> Iterator[list[dict[str, Any]]]:
    """A collection's filtered objects, a page at a time: taxii2client's `as_pages` protocol
    (`limit`, then `next` while `more`), looped here, since `as_pages` pages forever on a server
    that says `more` but sends nothing new, and logs on stderr (its own handler) whenever a
    server pages smaller than asked, as medallion does past its page size. (`next` may repeat:
    medallion's is one token for the whole listing.)"""
    from taxii2client.v21 import Collection

    coll = Collection(found.url, conn=conn, collection_info=found.info())
    seen: set[tuple[str, str]] = set()
    nxt: str | None = None
    for n in itertools.count(1):
        where = f"{found.url}objects/ (page {n})"
        envelope = coll.get_objects(limit=page_size, next=nxt, **filters)
        objects, more, nxt = read_envelope(envelope, where)
        before = len(seen)
        seen.update((o["id"], str(o.get("modified") or o.get("created"))) for o in objects)
        yield objects
        if not more:
            return
        if len(seen) == before or nxt is None:
            why = "no next page" if nxt is None else "no object it had not sent"
            raise InvalidInput(f"the server says there is more but sent {why}", Location(where))


def _entry(offer: Offer) -> IndexEntry:
    return IndexEntry(offer.domain, offer.version, offer.objects_url, offer.modified)


def _dry(offer: Offer) -> Fetched:
    return Fetched(offer.domain, offer.version, offer.objects_url, offer.modified)


def _download(
    conn: Connection,
    offer: Offer,
    entry: IndexEntry,
    settings: Settings,
    page_size: int,
    step: Step | None,
) -> Verified:
    """Every page of the collection, assembled, parsed and checked against what it said."""
    label = f"{offer.domain} {offer.version}"
    if step:
        step(f"downloading {label} from {offer.found.title}")
    conn.budget = settings.limits.max_bundle_bytes  # the pages of one release: at most a bundle
    objects: list[dict[str, Any]] = []
    for page in _pages(conn, offer.found, page_size):
        objects += page
        if step:
            step(f"downloading {label}", done=len(objects), total=None)
    if step:
        step(f"verifying {label}")
    raw = assemble(objects, offer)
    parsed = parse_bundle(raw, source=offer.objects_url, max_bytes=settings.limits.max_bundle_bytes)
    found = f"{parsed.domain} {parsed.version}"
    if found != label:
        raise InvalidInput(
            f"collection {offer.found.label()} says {label}, but its objects are {found}",
            Location(file=offer.objects_url),
        )
    return Verified(entry, parsed, pinned=False)


@contextmanager
def _taxii_errors(url: str) -> Iterator[None]:
    """taxii2client's own exceptions (a collection without `can_read`, a resource missing a
    required field) as kbmap errors naming the server."""
    from taxii2client.exceptions import AccessError, TAXIIServiceException

    try:
        yield
    except TAXIIServiceException as exc:
        error = Forbidden if isinstance(exc, AccessError) else InvalidInput
        raise error(f"not a usable TAXII 2.1 answer: {exc}", Location(file=url)) from exc
