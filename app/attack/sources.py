"""Where an ingest's bundles come from: files, folders and URLs, read one bundle ahead.

Stdlib and `core` only, so the CLI can start reading before it imports the database layer. Reading
a file, decompressing it and downloading release the GIL; doing them on a worker thread overlaps
them with the caller's own work (the CLI's imports, parsing the bundle before). One bundle is read
ahead at most, so a folder of releases never sits in memory all at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from app.core.config import Limits
from app.core.download import fetch
from app.core.errors import InvalidInput, Location, NotFound
from app.core.limits import maybe_gunzip, read_stream_bounded

BUNDLE_SUFFIXES = (".json", ".json.gz")


def expand_sources(sources: Sequence[str]) -> list[str]:
    """Files stay, folders give their bundle files (not recursive, sorted), URLs stay."""
    out: list[str] = []
    for src in sources:
        if src.startswith(("http://", "https://")):
            out.append(src)
            continue
        path = Path(src)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.name.endswith(BUNDLE_SUFFIXES))
            if not found:
                raise InvalidInput("folder holds no .json or .json.gz bundle", Location(file=src))
            out.extend(found)
        elif path.is_file():
            out.append(src)
        else:
            raise NotFound("no such file or folder", Location(file=src))
    return out


def read_bundle_json(
    source: str, *, limits: Limits, timeout: float, retries: int, deadline: float | None = None
) -> bytes:
    """The JSON bytes of one bundle (downloaded, read, gunzipped), within the bundle limit."""
    if source.startswith(("http://", "https://")):
        raw = fetch(
            source,
            max_bytes=limits.max_bundle_bytes,
            timeout=timeout,
            retries=retries,
            deadline=deadline,
        )
    else:
        with open(source, "rb") as fh:
            raw = read_stream_bounded(fh, limit=limits.max_bundle_bytes, name=source)
    return maybe_gunzip(raw, limit=limits.max_bundle_bytes, name=source)


class Bundle(NamedTuple):
    source: str
    data: bytes  # the JSON, gunzipped
    sha256: str  # of `data`: hashing releases the GIL too, so it is done beside the read


def _read(
    source: str, *, limits: Limits, timeout: float, retries: int, deadline: float | None
) -> Bundle:
    data = read_bundle_json(
        source, limits=limits, timeout=timeout, retries=retries, deadline=deadline
    )
    return Bundle(source, data, hashlib.sha256(data).hexdigest())


class BundleFeed:
    """The bundles of one ingest, in order, each read on a worker thread while the previous one
    is parsed. Source errors (no such file, empty folder) are raised at construction; a read
    error is raised where that bundle is taken, with the same message as a direct read."""

    def __init__(
        self,
        sources: Sequence[str],
        *,
        limits: Limits,
        timeout: float = 30.0,
        retries: int = 3,
        deadline: float | None = None,
    ) -> None:
        self.sources = expand_sources(sources)
        self._limits, self._timeout, self._retries = limits, timeout, retries
        self._deadline = deadline  # of each download
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kbmap-read")
        self._next: Future[Bundle] | None = self._submit(0)

    def _submit(self, index: int) -> Future[Bundle] | None:
        if index >= len(self.sources):
            return None
        return self._pool.submit(
            _read,
            self.sources[index],
            limits=self._limits,
            timeout=self._timeout,
            retries=self._retries,
            deadline=self._deadline,
        )

    def __iter__(self) -> Iterator[Bundle]:
        try:
            for index in range(len(self.sources)):
                assert self._next is not None
                bundle = self._next.result()
                self._next = self._submit(index + 1)
                yield bundle
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading ahead (an ingest that failed on an earlier bundle needs no more)."""
        if self._next is not None:
            self._next.cancel()
            self._next = None
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BundleFeed:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
