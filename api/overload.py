"""Ingress under overload: refuse with 503 and ``Retry-After`` before memory or latency grow.

An API process accepts a webhook only when it can hold it until Kafka has it: every 2xx waits
for ``acks=all`` (``api/publish.py``), so each request in progress holds its body, and each
record sent holds its bytes in the producer until acknowledged. Without a bound, senders
faster than the CPU or the broker grow both without limit (librdkafka alone queues up to
1 GiB) and every answer gets slower for everyone. Two bounds, both answered 503 with
``Retry-After`` (outcome ``overloaded`` in the ingress metrics, nothing published):

- :class:`OverloadMiddleware`, the outermost layer of the app: a ``/webhooks/`` request
  arriving while ``SYNAPSEOPS_INGRESS_MAX_IN_FLIGHT`` webhooks are in progress is answered
  at once — before the access log, authentication, routing or the body — so refusing costs a
  small fraction of accepting and the CPU goes to the requests let in (the bench measured
  the refusal inside the route at nearly the cost of an acceptance, and latency ran away);
- :func:`make_room`, called by ``api.webhooks.accept`` just before it publishes: an event
  whose bytes would take the producer's unacknowledged bytes past
  ``SYNAPSEOPS_INGRESS_MAX_PENDING_BYTES`` (one event always fits when nothing is pending,
  however large: the body cap bounds it).

Refusals by the middleware are not in the access log (they are counted, by source, in
``synapseops_ingress_requests_total``); logging each one would spend the CPU being saved.
"""

from __future__ import annotations

from prometheus_client import Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

from api import metrics
from api.publish import RETRY_AFTER_S
from synapseops.errors import IngressOverloaded
from synapseops.kafka import AsyncProducer
from synapseops.settings import IngressSettings

WEBHOOKS = "/webhooks/"

IN_FLIGHT = Gauge("synapseops_ingress_in_flight", "Webhook requests in progress in this process.")
IN_FLIGHT_LIMIT = Gauge(
    "synapseops_ingress_in_flight_limit", "SYNAPSEOPS_INGRESS_MAX_IN_FLIGHT of this process."
)
PENDING_BYTES = Gauge(
    "synapseops_ingress_pending_bytes",
    "Bytes the API's producer holds that Kafka has not acknowledged yet.",
)
PENDING_BYTES_LIMIT = Gauge(
    "synapseops_ingress_pending_bytes_limit", "SYNAPSEOPS_INGRESS_MAX_PENDING_BYTES."
)

_REFUSAL = b'{"detail": "ingress overloaded, try again after Retry-After seconds"}'
_REFUSAL_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_REFUSAL)).encode()),
    (b"retry-after", str(RETRY_AFTER_S).encode()),
]


def source_of(path: str, ingress: IngressSettings) -> str:
    """The ingress metric's label for a webhook path, as bounded as the routes' own labels:
    an allowed generic source, ``stripe``, a connector already confirmed, else a catch-all."""
    parts = path.strip("/").split("/")
    if parts == ["webhooks", "stripe"]:
        return "stripe"
    if len(parts) == 3 and parts[1] == "events":
        known = parts[2] in ingress.sources
        return metrics.source_label(parts[2]) if known else metrics.INVALID_SOURCE
    if len(parts) == 3:
        return metrics.connector_label(parts[1])
    return metrics.INVALID_SOURCE


class OverloadMiddleware:
    """The in-flight bound of ``/webhooks/`` requests (module docstring). Runs on the event
    loop only: the count needs no lock."""

    def __init__(self, app: ASGIApp, ingress: IngressSettings) -> None:
        self.app = app
        self.ingress = ingress
        self.max_in_flight = ingress.max_in_flight
        self.in_flight = 0
        IN_FLIGHT_LIMIT.set(self.max_in_flight)
        PENDING_BYTES_LIMIT.set(ingress.max_pending_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(WEBHOOKS):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            label = source_of(scope["path"], self.ingress)
            metrics.INGRESS_REQUESTS.labels(source=label, outcome=metrics.OVERLOADED).inc()
            await send({"type": "http.response.start", "status": 503, "headers": _REFUSAL_HEADERS})
            await send({"type": "http.response.body", "body": _REFUSAL})
            return
        self.in_flight += 1
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()


_watched: list[AsyncProducer] = []


def make_room(producer: AsyncProducer, size: int, max_pending_bytes: int) -> None:
    """:class:`IngressOverloaded` unless ``size`` more bytes fit in ``producer``."""
    if not _watched or _watched[0] is not producer:
        _watched[:] = [producer]
        PENDING_BYTES.set_function(lambda: producer.pending_bytes)
    pending = producer.pending_bytes
    if pending and pending + size > max_pending_bytes:
        raise IngressOverloaded(
            f"ingress overloaded ({pending} bytes waiting for Kafka), try again"
        )
