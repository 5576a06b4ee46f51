"""``describe_stripe_event`` and ``verify``: what ingress decides about a Stripe request, no I/O.

Signatures are made with the real ``stripe`` package, so our verifier is checked against
Stripe's own signing code, over the Stripe event samples of ``samples/stripe/events``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe
from pydantic import SecretStr

from api.routes.payments.stripe_webhooks import describe_stripe_event, verify
from synapseops.errors import IngressRejected, SchemaInvalid
from synapseops.settings import Settings, StripeSettings
from tests.fixtures import SAMPLES

FIXTURES = SAMPLES / "stripe" / "events"
SECRET = "whsec_unit_current"
OLD_SECRET = "whsec_unit_previous"
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# fixture file -> (event id, type, payment key)
EXPECTED = {
    "payment_intent.succeeded.json": (
        "evt_1FG74XB7kbjcJ8Qq22i2BPdt",
        "payment_intent.succeeded",
        "pi_1FG742B7kbjcJ8QqGKF6qIM0",
    ),
    "payment_intent.payment_failed.json": (
        "evt_3PgafyB7WZ01zgkW1xQnT5Vb",
        "payment_intent.payment_failed",
        "pi_1PgafyB7WZ01zgkWSjxsAJo3",
    ),
    # The fixture's charge has no payment intent: the charge itself keys it.
    "charge.refunded.json": (
        "evt_3Pgc72B7WZ01zgkW0Rf7Kd2x",
        "charge.refunded",
        "ch_1PgafuB7WZ01zgkWXYmPNZs8",
    ),
}


def settings_with(secret: str | None, tolerance_s: int = 300) -> Settings:
    return Settings(
        stripe=StripeSettings(
            webhook_secret=SecretStr(secret) if secret is not None else None,
            tolerance_s=tolerance_s,
        )
    )


def signed(raw: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(
        raw.decode(), secret, timestamp or int(time.time())
    )
    return {"Stripe-Signature": header}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_events_are_described_by_their_payment(name: str) -> None:
    body = json.loads((FIXTURES / name).read_bytes())
    event = describe_stripe_event({"traceparent": TRACE, "X-Entity-Key": "ignored"}, body)
    assert (event.event_id, event.event_type, event.entity_key) == EXPECTED[name]
    # The trace is continued: same trace id, a new span.
    assert event.traceparent.split("-")[1] == TRACE.split("-")[1]
    assert event.traceparent != TRACE
    assert event.received_at.endswith("Z")


def test_an_event_without_a_payment_is_keyed_by_its_id() -> None:
    body = {"id": "evt_1", "object": "event", "type": "balance.available", "data": {"object": 1}}
    assert describe_stripe_event({}, body).entity_key == "evt_1"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([1, 2], "envelope"),
        ({"id": "pi_1", "object": "payment_intent"}, "envelope"),
        ({"object": "event", "type": "x", "data": {}}, "'id'"),
        ({"object": "event", "id": 7, "type": "x", "data": {}}, "'id'"),
        ({"object": "event", "id": "evt_1", "data": {}}, "'type'"),
        ({"object": "event", "id": "evt_1", "type": "x"}, "'data'"),
        ({"object": "event", "id": "e" * 600, "type": "x", "data": {}}, "longer than"),
    ],
)
def test_what_is_not_an_event_envelope_is_refused(body: Any, reason: str) -> None:
    with pytest.raises(SchemaInvalid, match=reason):
        describe_stripe_event({}, body)


def test_verify_accepts_any_configured_secret_during_rotation() -> None:
    raw = (FIXTURES / "payment_intent.succeeded.json").read_bytes()
    rotating = settings_with(f"{SECRET}, {OLD_SECRET}")
    verify(raw, signed(raw, SECRET), rotating)
    verify(raw, signed(raw, OLD_SECRET), rotating)
    with pytest.raises(IngressRejected) as refused:
        verify(raw, signed(raw, OLD_SECRET), settings_with(SECRET))
    assert (refused.value.http_status, refused.value.error) == (401, "invalid_signature")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong_secret", "no v1 signature matches"),
        ("tampered", "no v1 signature matches"),
        ("stale", "outside the 300s tolerance"),
        ("future", "outside the 300s tolerance"),
        ("missing", "missing Stripe-Signature"),
        ("garbage", "no timestamp"),
    ],
)
def test_verify_refuses_with_a_reason(case: str, reason: str) -> None:
    raw = (FIXTURES / "charge.refunded.json").read_bytes()
    now = int(time.time())
    headers = {
        "wrong_secret": signed(raw, "whsec_somebody_else"),
        "tampered": signed(raw, SECRET),
        "stale": signed(raw, SECRET, now - 301),
        "future": signed(raw, SECRET, now + 400),
        "missing": {},
        "garbage": {"stripe-signature": "v1=abc"},
    }[case]
    body = raw
    if case == "tampered":
        body = raw.replace(b'"amount_refunded": 100', b'"amount_refunded": 999')
        assert body != raw
    with pytest.raises(IngressRejected) as refused:
        verify(body, headers, settings_with(SECRET))
    assert refused.value.http_status == 401
    assert refused.value.error == "invalid_signature"
    assert reason in refused.value.reason


def test_a_configured_tolerance_is_honoured() -> None:
    raw = (FIXTURES / "charge.refunded.json").read_bytes()
    old = signed(raw, SECRET, int(time.time()) - 1000)
    verify(raw, old, settings_with(SECRET, tolerance_s=3600))
    with pytest.raises(IngressRejected, match="tolerance"):
        verify(raw, old, settings_with(SECRET, tolerance_s=600))


def test_no_configured_secret_is_our_fault_not_the_senders() -> None:
    raw = (FIXTURES / "charge.refunded.json").read_bytes()
    with pytest.raises(IngressRejected) as refused:
        verify(raw, signed(raw, SECRET), settings_with(None))
    assert refused.value.http_status == 503
    assert refused.value.error == "not_configured"
