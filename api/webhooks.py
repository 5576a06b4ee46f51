"""The one webhook ingress: body limit, signature, parse, describe, publish, 503 — in that order.

Every webhook route (the generic ``/webhooks/events/{source}``, a connector's
``/webhooks/{connector}/{endpoint}``, ``/webhooks/stripe``, and the coming CRM and GitHub
ones) is a :class:`WebhookRoute`: it says what its request may be checked for before the body
is read (:meth:`~WebhookRoute.prepare`: the source exists, a token), how the raw bytes are
verified (:meth:`~WebhookRoute.verify`), what the parsed body says about itself
(:meth:`~WebhookRoute.describe`), and which topic and headers it goes to. :func:`accept` runs
the steps, the same for all:

0. (before the app: ``api.overload.OverloadMiddleware`` answers 503 with ``Retry-After``
   while the process holds as many webhooks as it may;)
1. ``prepare`` — refusals that need no body (unknown source 404, a missing token 401);
2. the body, read under the body cap of every route (``api/body_limit.py``: 413);
3. ``verify`` — the signature over the *raw* bytes (401 with the reason), before parsing;
4. JSON, then ``describe`` (400 for either);
5. a delivery this process already published is answered again (``seen``), not re-sent;
6. publish the original bytes, keyed by the entity, with the ingress headers
   (:func:`api.publish.publish_event`, ``acks=all``): 503 with ``Retry-After`` when the
   producer already holds its bound of unacknowledged bytes or Kafka does not take it, 413
   when it never will.

Each refusal is an :class:`~synapseops.errors.IngressRejected` (``SignatureInvalid``,
``BodyTooLarge`` among them), counted once in the ingress metrics under the route's label and
logged; the route renders it in its own body shape (:func:`http_error` is the plain
``{"detail": ...}`` one). Nothing is published for a refused request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

from api import metrics
from api.ingress import InboundEvent, kafka_headers, parse_json_body
from api.overload import make_room
from api.publish import RETRY_AFTER_S, publish_event
from synapseops.errors import (
    IngressOverloaded,
    IngressRejected,
    KafkaUnavailable,
    SchemaInvalid,
    Undecodable,
)
from synapseops.ids import trace_id_of
from synapseops.kafka import AsyncProducer, Headers, record_size
from synapseops.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Accepted:
    """Where an accepted event went (``duplicate``: this process had published it before)."""

    event: InboundEvent
    topic: str
    partition: int
    offset: int
    duplicate: bool = False


class WebhookRoute:
    """One webhook route's part of :func:`accept` (see the module doc); override the steps.

    ``source`` is what the record's ``synapseops-source`` says, ``label`` the ingress metric's
    label (bounded: a route confirms a name before it becomes a label), ``topic`` where it
    publishes.
    """

    topic: str
    source: str
    label: str

    async def prepare(self, request: Request) -> None:
        """Checks that need no body; raise an :class:`IngressRejected` to refuse."""

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Check the raw bytes' signature; raise :class:`~synapseops.errors.SignatureInvalid`."""

    def describe(self, headers: Mapping[str, str], body: bytes, parsed: Any) -> InboundEvent:
        """Event id, key, type and trace; :class:`SchemaInvalid` when unusable."""
        raise NotImplementedError

    def travelling(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """The HTTP headers kept with the record (a source's own token header is dropped)."""
        return headers

    def extra_headers(self) -> Headers:
        """Kafka headers the route adds to the ingress ones (a connector and endpoint)."""
        return []

    def seen(self, event: InboundEvent) -> Accepted | None:
        """The answer already given for this delivery, if this process published it."""
        return None

    def remember(self, accepted: Accepted) -> None:
        """Called once the record is durable."""

    def log_fields(self, event: InboundEvent) -> dict[str, Any]:
        return {
            "source": self.source,
            "event_id": event.event_id,
            "event_type": event.event_type,
            "trace_id": trace_id_of(event.traceparent),
            "topic": self.topic,
        }


async def accept(route: WebhookRoute, request: Request, producer: AsyncProducer) -> Accepted:
    """Run the ingress steps for ``route``; an :class:`IngressRejected` for every refusal."""
    started = time.perf_counter()
    try:
        return await _accept(route, request, producer)
    except IngressRejected as exc:
        if exc.outcome is not None:
            metrics.INGRESS_REQUESTS.labels(source=route.label, outcome=exc.outcome).inc()
        # A refusal for overload is one of many at once: counted (IngressShedding sees it) and
        # logged below warning, so shedding load does not spend the CPU it saves on logging.
        level = logging.INFO if isinstance(exc, IngressOverloaded) else logging.WARNING
        log.log(
            level,
            "webhook refused",
            extra={
                "source": route.source,
                "status": exc.http_status,
                "error": exc.error,
                "reason": exc.reason,
            },
        )
        raise
    finally:
        metrics.INGRESS_LATENCY.labels(source=route.label).observe(time.perf_counter() - started)


async def _accept(route: WebhookRoute, request: Request, producer: AsyncProducer) -> Accepted:
    await route.prepare(request)
    body = await request.body()  # BodyTooLarge past the cap of every route
    route.verify(body, request.headers)
    try:
        event = route.describe(request.headers, body, parse_json_body(body))
    except (Undecodable, SchemaInvalid) as exc:
        raise IngressRejected(str(exc), error="malformed_body", outcome=metrics.INVALID) from exc
    seen = route.seen(event)
    if seen is not None:
        metrics.INGRESS_REQUESTS.labels(source=route.label, outcome="duplicate").inc()
        return seen
    headers = [*kafka_headers(event, route.source, route.travelling(request.headers))]
    headers += route.extra_headers()
    size = record_size(event.entity_key.encode(), body, headers)
    make_room(producer, size, request.app.state.settings.ingress.max_pending_bytes)
    try:
        partition, offset = await publish_event(
            producer,
            route.topic,
            body,
            key=event.entity_key.encode(),
            headers=headers,
            label=route.label,
            log_fields=route.log_fields(event),
        )
    except KafkaUnavailable as exc:
        # publish_event counted it already.
        raise IngressRejected(
            f"event not accepted, try again: {exc}",
            http_status=503,
            error="kafka_unavailable",
            counted=True,
        ) from exc
    accepted = Accepted(event, route.topic, partition, offset)
    route.remember(accepted)
    return accepted


def http_error(exc: IngressRejected) -> HTTPException:
    """The plain answer of a refusal: ``{"detail": reason}``, ``Retry-After`` on a 503."""
    retry = {"Retry-After": str(RETRY_AFTER_S)} if exc.http_status == 503 else None
    return HTTPException(status_code=exc.http_status, detail=exc.reason, headers=retry)
