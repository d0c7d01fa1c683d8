"""Bounded HTTP fetch: streaming, timeouts, retries with backoff, a size cap.

Lives in core because both the ATT&CK ingest (a URL source) and the refresh flow download.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
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
    deadline: float | None = None,
    progress: Progress | None = None,
    client: httpx.Client | None = None,
) -> bytes:
    """GET `url` into memory; retry connection errors, timeouts and 5xx; refuse > max_bytes.

    `timeout` bounds each connect and read; `deadline` (seconds) the whole download, retries
    included: a mirror trickling a byte a second never trips a read timeout."""
    if not url.startswith(("http://", "https://")):
        raise InvalidInput("only http(s) URLs can be downloaded", Location(file=url))

    def attempts(stop: threading.Event) -> bytes:
        return _fetch_retrying(
            url,
            max_bytes=max_bytes,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            progress=progress,
            client=client,
            stop=stop,
        )

    if deadline is None:
        return attempts(threading.Event())
    return _within(deadline, url, attempts)


def _within(seconds: float, url: str, work: Callable[[threading.Event], bytes]) -> bytes:
    """`work` on a daemon thread, given up after `seconds`: the caller gets its error now; the
    thread sees `stop` at its next read (within one read timeout) and ends, its bytes unused."""
    result: Future[bytes] = Future()
    stop = threading.Event()

    def run() -> None:
        try:
            result.set_result(work(stop))
        except BaseException as exc:  # handed to the caller, which raises it
            result.set_exception(exc)

    threading.Thread(target=run, name="kbmap-download", daemon=True).start()
    try:
        return result.result(timeout=seconds)
    except TimeoutError:
        stop.set()
        raise Unavailable(
            f"download did not finish within {seconds:g} s (KBMAP_DOWNLOAD_DEADLINE)",
            Location(file=url),
        ) from None


def _fetch_retrying(
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    retries: int,
    backoff: float,
    progress: Progress | None,
    client: httpx.Client | None,
    stop: threading.Event,
) -> bytes:
    import httpx

    own = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True)
    last: str = ""
    try:
        for attempt in range(retries + 1):
            if attempt and stop.wait(backoff * 2 ** (attempt - 1)):
                break
            try:
                return _fetch_once(http, url, max_bytes=max_bytes, progress=progress, stop=stop)
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
    http: httpx.Client,
    url: str,
    *,
    max_bytes: int,
    progress: Progress | None,
    stop: threading.Event,
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
        for chunk in response.iter_bytes():  # as each arrives, so `stop` is seen at once
            if stop.is_set():  # the caller gave up (deadline): stop reading
                raise Unavailable("download abandoned", Location(file=url))
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
