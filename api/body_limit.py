"""The request-body cap of every route, as a pure ASGI middleware (nothing is buffered here).

The cap is ``SYNAPSEOPS_API_MAX_BODY_BYTES``. The declared ``Content-Length`` is checked
first, before a single byte is handed to the app; then the streamed bytes are counted, since a
chunked request declares nothing and a client may lie. Either way the app's next ``receive``
raises :class:`BodyTooLargeHTTP` — the error tree's
:class:`~synapseops.errors.BodyTooLarge`, and a 413 ``HTTPException`` with the reason (FastAPI's
own body parsing turns any other exception into a 400) — so each route answers
in its own shape (the Stripe ingress with ``{"error": "body_too_large", ...}``, counted in the
ingress metrics; the management API with ``{"detail": ...}``). Should the exception escape the
app before it answered, this middleware answers the 413 itself. A route that never reads its
body never has it read.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, status
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synapseops.errors import BodyTooLarge


class BodyTooLargeHTTP(BodyTooLarge, HTTPException):
    """:class:`~synapseops.errors.BodyTooLarge` that FastAPI's body parsing lets through."""

    def __init__(self, reason: str) -> None:
        HTTPException.__init__(self, status.HTTP_413_CONTENT_TOO_LARGE, reason)
        self.reason = reason


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.strip().isdigit():
            return int(value)
    return None


class BodyLimitMiddleware:
    """``exempt(path)``: a route that streams its body and caps it itself (a bulk upload)."""

    def __init__(
        self, app: ASGIApp, *, limit: int, exempt: Callable[[str], bool] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt is not None and self.exempt(scope["path"])):
            await self.app(scope, receive, send)
            return
        limit = self.limit
        declared = _declared_length(scope)
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise BodyTooLargeHTTP(
                    f"body of {declared} bytes exceeds the limit of {limit} bytes"
                )
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeHTTP(f"body exceeds the limit of {limit} bytes")
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await JSONResponse({"detail": exc.reason}, status_code=413)(scope, receive, send)
