"""Where an ingest's bundles come from: files, folders and URLs, read one bundle ahead.

Stdlib and `core` only, so the CLI can start reading before it imports the database layer. Reading
a file, decompressing it and downloading release the GIL; doing them on a worker thread overlaps
them with the caller's own work (the CLI's imports, parsing the bundle before). One bundle is read
ahead at most, so a folder of releases never sits in memory all at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

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


def read_bundle_json(source: str, *, limits: Limits, timeout: float, retries: int) -> bytes:
    """The JSON bytes of one bundle (downloaded, read, gunzipped), within the bundle limit."""
    if source.startswith(("http://", "https://")):
        raw = fetch(source, max_bytes=limits.max_bundle_bytes, timeout=timeout, retries=retries)
    else:
        with open(source, "rb") as fh:
            raw = read_stream_bounded(fh, limit=limits.max_bundle_bytes, name=source)
    return maybe_gunzip(raw, limit=limits.max_bundle_bytes, name=source)


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
    ) -> None:
        self.sources = expand_sources(sources)
        self._limits, self._timeout, self._retries = limits, timeout, retries
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kbmap-read")
        self._next: Future[bytes] | None = self._read(0)

    def _read(self, index: int) -> Future[bytes] | None:
        if index >= len(self.sources):
            return None
        return self._pool.submit(
            read_bundle_json,
            self.sources[index],
            limits=self._limits,
            timeout=self._timeout,
            retries=self._retries,
        )

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        try:
            for index, source in enumerate(self.sources):
                assert self._next is not None
                data = self._next.result()
                self._next = self._read(index + 1)
                yield source, data
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
