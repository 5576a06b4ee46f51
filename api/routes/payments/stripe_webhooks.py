"""``POST /webhooks/stripe``: verified Stripe events, raw bytes to ``payments.stripe.events``.

The order of the checks is the contract (issue 5, item 1):

1. size — 413 before the body is buffered (Content-Length first, then the bytes counted);
2. signature — ``Stripe-Signature`` over the *raw* bytes with every configured secret (so a
   secret can rotate) and the timestamp tolerance; 401 ``{"error": "invalid_signature",
   "reason": ...}``. It comes before parsing: an unsigned body is not worth reading;
3. envelope — JSON and ``object == "event"`` with a string ``id`` and ``type``; else 400;
4. publish the original bytes keyed by the payment (:func:`streams.payments.events.payment_key`,
   the event id when the event names no payment), with the ingress headers of
   ``synapseops/headers.py``; 200 only after the broker's ``acks=all`` delivery report, 503 with
   ``Retry-After`` when Kafka does not take it (Stripe retries non-2xx answers).

Every error body has the same shape, ``{"error": <code>, "reason": <text>}``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api import metrics
from api.deps import ProducerDep, SettingsDep
from api.ingress import MAX_ID_LENGTH, InboundEvent, kafka_headers, parse_json_body
from api.publish import RETRY_AFTER_S, publish_event
from api.routes.event_log.webhooks import read_body
from streams.payments.events import payment_key
from synapseops.errors import (
    IngressRejected,
    KafkaUnavailable,
    SchemaInvalid,
    SignatureInvalid,
    Undecodable,
)
from synapseops.headers import received_at_now
from synapseops.ids import child_traceparent, trace_id_of
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import Settings
from synapseops.signatures import verify_stripe
from topics.registry import STRIPE_EVENTS

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
log = get_logger(__name__)

SOURCE = "stripe"
SIGNATURE_HEADER = "stripe-signature"
# Outcome label of the ingress counter for a refused signature (api/metrics.py has the others).
INVALID_SIGNATURE = "invalid_signature"


class StripeEventReceived(BaseModel):
    received: bool = True
    event_id: str


class WebhookError(BaseModel):
    error: str
    reason: str


def describe_stripe_event(headers: Mapping[str, str], body: Any) -> InboundEvent:
    """Event id (``evt_…``), payment key, type and trace of a Stripe event envelope.

    Raises :class:`SchemaInvalid` when ``body`` is not an event envelope. Headers that other
    sources may use to name the entity (``X-Entity-Key``) are ignored on purpose: a Stripe
    event is keyed by the payment it is about, whoever relays it.
    """
    if not isinstance(body, dict) or body.get("object") != "event":
        raise SchemaInvalid("not a Stripe event envelope: 'object' must be \"event\"")
    event_id = body.get("id")
    event_type = body.get("type")
    if not isinstance(event_id, str) or not event_id.strip():
        raise SchemaInvalid("Stripe event without a string 'id'")
    if not isinstance(event_type, str) or not event_type.strip():
        raise SchemaInvalid("Stripe event without a string 'type'")
    if not isinstance(body.get("data"), dict):
        raise SchemaInvalid("Stripe event without a 'data' object")
    event_id = event_id.strip()
    entity_key = payment_key(body) or event_id
    for name, value in (("event id", event_id), ("payment key", entity_key)):
        if len(value) > MAX_ID_LENGTH:
            raise SchemaInvalid(f"{name} longer than {MAX_ID_LENGTH} characters")
    lowered = {name.lower(): value for name, value in headers.items()}
    return InboundEvent(
        event_id=event_id,
        entity_key=entity_key,
        event_type=event_type.strip(),
        traceparent=child_traceparent(lowered.get("traceparent")),
        received_at=received_at_now(),
    )


def verify(body: bytes, headers: Mapping[str, str], settings: Settings) -> None:
    """The signature check of step 2, as a :class:`IngressRejected` when it fails."""
    secrets = settings.stripe.secrets
    if not secrets:
        # Our misconfiguration, not the sender's fault: a 5xx makes Stripe retry later.
        raise IngressRejected(
            "no Stripe webhook secret is configured (SYNAPSEOPS_STRIPE_WEBHOOK_SECRET)",
            http_status=status.HTTP_503_SERVICE_UNAVAILABLE,
            error="not_configured",
            outcome=metrics.UNAVAILABLE,
        )
    header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
    try:
        verify_stripe(body, header, secrets, tolerance_s=settings.stripe.tolerance_s)
    except SignatureInvalid as exc:
        raise SignatureInvalid(exc.reason, outcome=INVALID_SIGNATURE) from exc


def _error(exc: IngressRejected) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.http_status == 503 else None
    return JSONResponse(
        WebhookError(error=exc.error, reason=exc.reason).model_dump(),
        status_code=exc.http_status,
        headers=headers,
    )


@router.post(
    "/stripe",
    summary="Accept a signed Stripe event; 200 once it is durably in Kafka",
    response_model=StripeEventReceived,
    responses={
        400: {"model": WebhookError, "description": "not JSON or not a Stripe event envelope"},
        401: {"model": WebhookError, "description": "bad, stale or missing Stripe-Signature"},
        413: {"model": WebhookError, "description": "body over SYNAPSEOPS_API_MAX_BODY_BYTES"},
        503: {"model": WebhookError, "description": "Kafka did not take it; see Retry-After"},
    },
)
async def receive_stripe_event(
    request: Request, settings: SettingsDep, producer: ProducerDep
) -> StripeEventReceived | JSONResponse:
    started = time.perf_counter()
    label = metrics.source_label(SOURCE)
    try:
        received = await _receive(request, settings, producer)
    except IngressRejected as exc:
        if exc.outcome is not None:
            metrics.INGRESS_REQUESTS.labels(source=label, outcome=exc.outcome).inc()
        log.warning(
            "stripe event refused",
            extra={
                "source": SOURCE,
                "status": exc.http_status,
                "error": exc.error,
                "reason": exc.reason,
            },
        )
        return _error(exc)
    finally:
        metrics.INGRESS_LATENCY.labels(source=label).observe(time.perf_counter() - started)
    return received


async def _receive(
    request: Request, settings: Settings, producer: AsyncProducer
) -> StripeEventReceived:
    body = await read_body(request)
    verify(body, request.headers, settings)
    try:
        event = describe_stripe_event(request.headers, parse_json_body(body))
    except (Undecodable, SchemaInvalid) as exc:
        raise IngressRejected(str(exc), error="malformed_body", outcome=metrics.INVALID) from exc

    coordinates = {
        "source": SOURCE,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "payment_key": event.entity_key,
        "trace_id": trace_id_of(event.traceparent),
        "topic": STRIPE_EVENTS.name,
    }
    try:
        await publish_event(
            producer,
            STRIPE_EVENTS.name,
            body,
            key=event.entity_key.encode(),
            headers=kafka_headers(event, SOURCE, request.headers),
            label=metrics.source_label(SOURCE),
            log_fields=coordinates,
        )
    except KafkaUnavailable as exc:
        raise IngressRejected(
            f"event not accepted, try again: {exc}",
            http_status=503,
            error="kafka_unavailable",
            counted=True,
        ) from exc
    return StripeEventReceived(event_id=event.event_id)
