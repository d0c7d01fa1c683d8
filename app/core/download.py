"""Bounded HTTP fetch: streaming, timeouts, retries with backoff, a size cap.

Lives in core because both the ATT&CK ingest (a URL source) and the refresh flow download.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # httpx is imported when a download happens, not on every CLI start
    import httpx

from app.core.errors import InvalidInput, Location, TooLarge, Unavailable

Progress = Callable[[int, int | None], None]


def fetch(
    url: str,
    *,
    max_bytes: int,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 0.5,
    progress: Progress | None = None,
    client: httpx.Client | None = None,
) -> bytes:
    """GET `url` into memory; retry connection errors, timeouts and 5xx; refuse > max_bytes."""
    if not url.startswith(("http://", "https://")):
        raise InvalidInput("only http(s) URLs can be downloaded", Location(file=url))
    import httpx

    own = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True)
    last: str = ""
    try:
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1))
            try:
                return _fetch_once(http, url, max_bytes=max_bytes, progress=progress)
            except _Retryable as exc:
                last = str(exc)
            except httpx.TimeoutException:
                last = f"timed out after {timeout:g} s"
            except httpx.TransportError as exc:
                last = f"connection failed ({type(exc).__name__})"
    finally:
        if own:
            http.close()
    raise Unavailable(f"download failed after {retries + 1} attempts: {last}", Location(file=url))


class _Retryable(Exception):
    pass


def _fetch_once(
    http: httpx.Client, url: str, *, max_bytes: int, progress: Progress | None
) -> bytes:
    with http.stream("GET", url) as response:
        if response.status_code >= 500:
            raise _Retryable(f"server answered {response.status_code}")
        if response.status_code != 200:
            raise InvalidInput(f"server answered {response.status_code}", Location(file=url))
        declared = response.headers.get("content-length")
        total = int(declared) if declared and declared.isdigit() else None
        if total is not None and total > max_bytes:
            raise TooLarge(
                f"download is {total} bytes, over the limit of {max_bytes}", Location(file=url)
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes(1 << 16):
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(
                    f"download exceeds the limit of {max_bytes} bytes", Location(file=url)
                )
            chunks.append(chunk)
            if progress:
                progress(size, total)
        if total is not None and size != total:
            raise _Retryable(f"download truncated ({size} of {total} bytes)")
        return b"".join(chunks)
