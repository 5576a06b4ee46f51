"""Structured access log as a pure ASGI middleware (no body buffering, streaming-safe).

Logged: method, path, status, duration, client address. Never logged: request or response
bodies, query strings (callers put tokens there), or any header (Authorization above all).

Every answer also carries ``Server-Timing: app;dur=<ms>``, measured by the same clock until
the app started answering (a page is rendered before that): the browser's devtools show it and
the console's browser tests read it per page.

Every answer is counted in ``synapseops_http_requests_total{route,status}``: ``route`` is the
matched route's path template (``/api/v1/dead-letters/{id}``), never the raw path, so ids do
not become labels; a request no route matched, or refused before routing (the principal
check's 401/403, the body cap's 413), counts as ``_unmatched``. It is what sees a
management route's 5xx (ingress has its own outcomes in ``synapseops_ingress_requests_total``).
"""

from __future__ import annotations

import time

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synapseops.logging import get_logger

log = get_logger("synapseops.api.access")

UNMATCHED = "_unmatched"

HTTP_REQUESTS = Counter(
    "synapseops_http_requests_total",
    "HTTP answers of the API by route template and status code.",
    ["route", "status"],
)


def route_label(scope: Scope) -> str:
    """The path template of the route that answered (set by routing on the scope)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500  # what the client sees if the app raises before answering

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
                elapsed_ms = (time.perf_counter() - started) * 1000
                headers = [
                    *message.get("headers", ()),
                    (b"server-timing", b"app;dur=%.1f" % elapsed_ms),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            HTTP_REQUESTS.labels(route=route_label(scope), status=str(status_code)).inc()
            client = scope.get("client")
            log.info(
                "http request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "client": client[0] if client else None,
                },
            )
