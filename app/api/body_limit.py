"""BodyLimit: refuse a request body larger than the upload limit before reading it.

FastAPI parses a multipart or JSON body before it runs any dependency, so without this an
anonymous client could stream gigabytes into the spooled temporary files of a POST that then
answers 401. A Content-Length over the cap is answered 413 at once; a body without one (chunked)
is counted as it arrives and cut off at the cap. Plain ASGI, so bodies under the cap stream
through untouched. The cap is the largest upload plus room for the form's other fields.
"""

from __future__ import annotations

import contextlib

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import Location, TooLarge

FORM_OVERHEAD = 1 << 20  # multipart headers and the small form fields next to the file


class _Exceeded(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_upload_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.cap = max_upload_bytes + FORM_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.cap:
            await self._refuse(scope, send)
            return
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.cap:
                    exceeded = True
                    raise _Exceeded
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # the app's own answer to the cut-off body gives way to the 413
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_Exceeded):
            await self.app(scope, counting_receive, guarded_send)
        if exceeded and not started:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = TooLarge(
            f"request body exceeds the upload limit of {self.max_upload_bytes} bytes",
            Location(file=str(scope.get("path", ""))),
        )
        body = orjson.dumps(error.as_dict())
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
