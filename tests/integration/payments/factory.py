"""Stripe events for payment tests and the benchmark, built from the real fixtures.

Every event is a real sample envelope (``samples/stripe``) with fresh ids and amounts,
so the shapes the gateway parses are Stripe's own (2019 ``charges``, current ``latest_charge``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from uuid import uuid4

from synapseops import headers as h
from synapseops.ids import new_traceparent
from tests.fixtures import SAMPLES

FIXTURES = SAMPLES / "stripe"


@cache
def _fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_bytes())
    return loaded


def _envelope(template: str, event_type: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
    event = copy.deepcopy(_fixture(template))
    event["id"] = f"evt_{uuid4().hex[:24]}"
    event["type"] = event_type
    event["created"] = created
    event["data"] = {"object": obj}
    return event


@dataclass(frozen=True)
class StripeEvent:
    event: dict[str, Any]
    key: str  # the payment: the Kafka key

    @property
    def event_id(self) -> str:
        return str(self.event["id"])

    @property
    def body(self) -> bytes:
        return json.dumps(self.event, separators=(",", ":")).encode()

    def headers(self, received_at: datetime | None = None) -> list[tuple[str, bytes]]:
        """The headers ingress stamps (synapseops/headers.py)."""
        at = (received_at or datetime.now(UTC)).isoformat(timespec="milliseconds")
        return [
            (h.EVENT_ID, self.event_id.encode()),
            (h.SOURCE, b"stripe"),
            (h.EVENT_TYPE, str(self.event["type"]).encode()),
            (h.RECEIVED_AT, at.replace("+00:00", "Z").encode()),
            (h.HTTP_HEADERS, b'{"content-type": "application/json", "stripe-signature": "t=1"}'),
            (h.CONTENT_TYPE, b"application/json"),
            (h.TRACEPARENT, new_traceparent().encode()),
        ]


class PaymentFactory:
    """Events of one payment intent ``pi`` (and its charge ``ch``)."""

    def __init__(self, prefix: str = "pi", currency: str = "usd", amount: int = 1099) -> None:
        token = uuid4().hex[:20]
        self.pi = f"{prefix}_{token}"
        self.ch = f"ch_{token}"
        self.currency = currency
        self.amount = amount
        self.created = 1_760_000_000

    def _tick(self) -> int:
        self.created += 1
        return self.created

    def _intent(self, template: str, status: str, received: int) -> dict[str, Any]:
        obj: dict[str, Any] = copy.deepcopy(_fixture(template)["data"]["object"])
        obj.update(id=self.pi, amount=self.amount, currency=self.currency, status=status)
        obj["amount_received"] = received
        charges = obj.get("charges")
        if isinstance(charges, dict):
            for charge in charges.get("data", []):
                charge.update(id=self.ch, payment_intent=self.pi, amount=self.amount)
        return obj

    def created_event(self) -> StripeEvent:
        obj = self._intent("events/payment_intent.succeeded.json", "requires_payment_method", 0)
        obj["charges"] = {"object": "list", "data": []}
        event = _envelope(
            "events/payment_intent.succeeded.json", "payment_intent.created", obj, self._tick()
        )
        return StripeEvent(event, self.pi)

    def succeeded(self) -> StripeEvent:
        template = "events/payment_intent.succeeded.json"
        obj = self._intent(template, "succeeded", self.amount)
        event = _envelope(template, "payment_intent.succeeded", obj, self._tick())
        return StripeEvent(event, self.pi)

    def payment_failed(self) -> StripeEvent:
        template = "events/payment_intent.payment_failed.json"
        obj = self._intent(template, "requires_payment_method", 0)
        event = _envelope(template, "payment_intent.payment_failed", obj, self._tick())
        return StripeEvent(event, self.pi)

    def refunded(self, amount_refunded: int) -> StripeEvent:
        template = "events/charge.refunded.json"
        obj: dict[str, Any] = copy.deepcopy(_fixture(template)["data"]["object"])
        obj.update(id=self.ch, payment_intent=self.pi, amount=self.amount, currency=self.currency)
        obj.update(amount_refunded=amount_refunded, refunded=amount_refunded >= self.amount)
        event = _envelope(template, "charge.refunded", obj, self._tick())
        return StripeEvent(event, self.pi)

    def dispute(self, amount: int) -> StripeEvent:
        obj = copy.deepcopy(_fixture("dispute.json"))
        obj.update(id=f"dp_{self.ch[3:]}", charge=self.ch, payment_intent=self.pi)
        obj.update(amount=amount, currency=self.currency)
        event = _envelope(
            "events/charge.refunded.json", "charge.dispute.created", obj, self._tick()
        )
        return StripeEvent(event, self.pi)

    # Settlement ids as the gateway derives them (streams.payments.settlement).
    @property
    def charge_settlement(self) -> str:
        return f"stl_{self.pi}_charge"

    def refund_settlement(self, total: int) -> str:
        return f"stl_{self.ch}_refund_{total}"

    @property
    def dispute_settlement(self) -> str:
        return f"stl_dp_{self.ch[3:]}_dispute"
