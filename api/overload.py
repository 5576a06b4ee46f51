"""Ingress under overload: refuse with 503 and ``Retry-After`` before memory grows.

An API process accepts a webhook only when it can hold it until Kafka has it: every 2xx waits
for ``acks=all`` (``api/publish.py``), so each request in progress holds its body, and each
record sent holds its bytes in the producer until acknowledged. Without a bound, senders
faster than the CPU or the broker grow both without limit (librdkafka alone queues up to
1 GiB) and every answer gets slower for everyone. So :class:`IngressGate` refuses, as
:class:`~synapseops.errors.IngressOverloaded` (503, ``Retry-After``, outcome ``overloaded``):

- a request arriving while ``SYNAPSEOPS_INGRESS_MAX_IN_FLIGHT`` webhooks are in progress —
  before its body is read or anything is looked up, so refusing costs next to nothing;
- an event whose bytes would take the producer's unacknowledged bytes past
  ``SYNAPSEOPS_INGRESS_MAX_PENDING_BYTES`` (one event is always let through when nothing is
  pending, however large: the body cap bounds it).

Nothing refused is published, so a refusal never hides an accepted event; the sender retries
after ``Retry-After``. The gate lives on the app (one per process and producer); both bounds
are exported as gauges beside their current values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Gauge
from starlette.types import ASGIApp

from synapseops.errors import IngressOverloaded
from synapseops.kafka import AsyncProducer
from synapseops.settings import IngressSettings

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


class IngressGate:
    """The two bounds of one API process (module docstring). Used from the event loop only:
    the count needs no lock, and a check and the produce after it are not interleaved."""

    def __init__(self, settings: IngressSettings, producer: AsyncProducer) -> None:
        self.max_in_flight = settings.max_in_flight
        self.max_pending_bytes = settings.max_pending_bytes
        self.producer = producer
        self.in_flight = 0
        IN_FLIGHT_LIMIT.set(self.max_in_flight)
        PENDING_BYTES_LIMIT.set(self.max_pending_bytes)
        PENDING_BYTES.set_function(lambda: producer.pending_bytes)

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold one of the in-flight places for the request; :class:`IngressOverloaded` when
        none is free."""
        if self.in_flight >= self.max_in_flight:
            raise IngressOverloaded(
                f"ingress overloaded ({self.in_flight} requests in progress), try again",
            )
        self.in_flight += 1
        IN_FLIGHT.inc()
        try:
            yield
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()

    def make_room(self, size: int) -> None:
        """:class:`IngressOverloaded` unless ``size`` more bytes fit in the producer."""
        pending = self.producer.pending_bytes
        if pending and pending + size > self.max_pending_bytes:
            raise IngressOverloaded(
                f"ingress overloaded ({pending} bytes waiting for Kafka), try again",
            )


def gate_of(app: ASGIApp, producer: AsyncProducer) -> IngressGate:
    """The app's gate for ``producer``, made on first use from the app's settings."""
    state = app.state  # type: ignore[attr-defined]
    gate: IngressGate | None = getattr(state, "ingress_gate", None)
    if gate is None or gate.producer is not producer:
        gate = IngressGate(state.settings.ingress, producer)
        state.ingress_gate = gate
    return gate
