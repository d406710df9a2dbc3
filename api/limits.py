"""A limit on request bodies: a client that sends 10 MB (announced or chunked) gets
Salesforce's error shape with 413, and the facade's memory does not grow with what it was
sent. The rest of a refused body is read and dropped (up to :data:`DRAIN_LIMIT`) before
answering: a client still writing its body when the connection closes sees a broken pipe,
not the 413."""

from __future__ import annotations

import json
import logging

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("om.api")

MAX_REQUEST_HEAD_BYTES = 512_000
"""What uvicorn (h11) buffers of a request line and headers: beyond it the connection is
closed without an answer. Room for the longest URL a valid request can have (a 20,000
character SOQL query, percent-encoded), so a too-long query gets its 400 instead."""

DRAIN_LIMIT = 64_000_000  # bytes of a refused body read and dropped; beyond, the connection is just closed


def too_large_message(limit: int) -> str:
    return f"The request body is larger than {limit} bytes; send less per request."


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the body passes the limit (the rest already dropped). An
    HTTPException, so a route parsing its body answers 413 through the app's own handler
    (FastAPI turns other exceptions met while parsing a body into a 400)."""

    def __init__(self, limit: int):
        super().__init__(status_code=413, detail=too_large_message(limit))


def _too_large_body(limit: int) -> bytes:
    return json.dumps([{"errorCode": "REQUEST_TOO_LARGE", "output": None, "enhancedErrorType": None,
                        "message": too_large_message(limit)}]).encode()


class BodySizeLimit:
    """Pure ASGI middleware: 413 when Content-Length says too much, or when the bytes
    received so far pass ``limit`` (a chunked body has no Content-Length)."""

    def __init__(self, app: ASGIApp, *, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        declared = headers.get(b"content-length")
        received = 0
        more_body = True
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            # A client that waits for "100 Continue" has sent nothing yet: answer at once (reading
            # would make the server send 100 Continue and the client upload it all).
            waiting = headers.get(b"expect", b"").lower() == b"100-continue"
            await self._refuse(None if waiting else receive, send, received)
            return
        started = False

        async def limited_receive() -> Message:
            nonlocal received, more_body
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more_body = message.get("more_body", False)
                if received > self.limit:
                    if more_body:
                        received = await _drop_rest(receive, received)
                        more_body = False
                    raise BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:  # the app answered before reading all of it: nothing more to say
                logger.warning("a request body passed %d bytes after the answer had started", self.limit)
                return
            await self._refuse(receive if more_body else None, send, received)

    async def _refuse(self, receive: Receive | None, send: Send, received: int) -> None:
        if receive is not None:
            await _drop_rest(receive, received)
        body = _too_large_body(self.limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


async def _drop_rest(receive: Receive, received: int) -> int:
    """Read and drop the rest of a body, a chunk at a time, up to :data:`DRAIN_LIMIT`."""
    while received <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            break
        received += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return received
