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

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api import metrics
from api.ingress import MAX_ID_LENGTH, InboundEvent
from api.publish import RETRY_AFTER_S
from api.webhooks import WebhookRoute, accept
from streams.payments.events import payment_key
from synapseops.errors import IngressRejected, SchemaInvalid, SignatureInvalid
from synapseops.headers import received_at_now
from synapseops.ids import child_traceparent
from synapseops.settings import Settings
from synapseops.signatures import verify_stripe
from topics.registry import STRIPE_EVENTS

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

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


class StripeWebhook(WebhookRoute):
    """Stripe's events, keyed by the payment they are about."""

    topic = STRIPE_EVENTS.name
    source = SOURCE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.label = metrics.source_label(SOURCE)

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        verify(body, headers, self.settings)

    def describe(self, headers: Mapping[str, str], body: bytes, parsed: Any) -> InboundEvent:
        return describe_stripe_event(headers, parsed)

    def log_fields(self, event: InboundEvent) -> dict[str, Any]:
        return {**super().log_fields(event), "payment_key": event.entity_key}


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
async def receive_stripe_event(request: Request) -> JSONResponse:
    # The settings and the producer are read off the app (what api/deps.py's dependencies
    # read) instead of declared as dependencies, and the answer is rendered here instead of
    # validated through ``response_model`` (which stays, for the schema): FastAPI's
    # dependency solving and response validation were a fifth of this route's own CPU.
    state = request.app.state
    try:
        accepted = await accept(StripeWebhook(state.settings), request, state.producer)
    except IngressRejected as exc:
        return _error(exc)
    return JSONResponse({"received": True, "event_id": accepted.event.event_id})
