"""Stripe webhook events as typed payment events.

Stripe's shapes drift with ``api_version`` (2019-era PaymentIntents embed ``charges``; current
ones carry ``latest_charge``) and expandable fields hold an id or an object: this module reads
only the fields settlement needs, in every shape, and refuses anything else clearly.
Amounts stay integers in the currency's minor unit; currencies are upper-cased ISO 4217 codes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import msgspec
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from synapseops.errors import SchemaInvalid, Undecodable


class EntryKind(StrEnum):
    CHARGE = "charge"
    REFUND = "refund"
    DISPUTE = "dispute"


class PaymentEvent(BaseModel):
    """What one Stripe event says about one payment."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    event_type: str
    created: int
    api_version: str | None
    livemode: bool
    payment_id: str  # the payment intent, or the charge for charges made without one
    object_id: str
    kind: EntryKind
    amount: int  # minor units
    currency: str
    status: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


def _id_of(value: Any) -> str | None:
    """An expandable field: an id string, an embedded object with an id, or nothing."""
    if isinstance(value, str):
        return value
    embedded = value.get("id") if isinstance(value, dict) else None
    return embedded if isinstance(embedded, str) else None


def _int(obj: dict[str, Any], *names: str) -> int:
    for name in names:
        value = obj.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
    raise SchemaInvalid(f"no integer amount in any of {', '.join(names)}")


# msgspec decodes a Stripe envelope about twice as fast as json.loads (the largest part of the
# gateway's own CPU per event). It is the fast path only: whatever it refuses (a UTF-8 BOM,
# UTF-16/32, NaN, an integer beyond 64 bits) json.loads decides, so the events accepted and the
# error for the rest stay json.loads'.
_FAST = msgspec.json.Decoder()


def decode(raw: bytes) -> dict[str, Any]:
    try:
        event = _FAST.decode(raw)
    except msgspec.DecodeError:
        try:
            event = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Undecodable(f"Stripe event is not JSON: {exc}") from exc
    if not isinstance(event, dict) or event.get("object") != "event":
        raise SchemaInvalid("not a Stripe event envelope (object != 'event')")
    return event


def payment_key(event: dict[str, Any]) -> str | None:
    """The payment an event is about: the Kafka key that keeps its events in order."""
    obj = event.get("data", {}).get("object", {})
    if not isinstance(obj, dict):
        return None
    kind = obj.get("object")
    if kind == "payment_intent":
        return _id_of(obj.get("id"))
    if kind in ("charge", "refund", "dispute"):
        return (
            _id_of(obj.get("payment_intent")) or _id_of(obj.get("charge")) or _id_of(obj.get("id"))
        )
    return _id_of(obj.get("id"))


def parse(raw: bytes) -> PaymentEvent | None:
    """The settlement-relevant view of a Stripe event, or None for types we do not settle."""
    return parse_envelope(decode(raw))


def parse_envelope(event: dict[str, Any]) -> PaymentEvent | None:
    """:func:`parse` of an envelope :func:`decode` already read (a record is decoded once)."""
    event_type = str(event.get("type", ""))
    obj = event.get("data", {}).get("object")
    if not isinstance(obj, dict) or not isinstance(event.get("id"), str):
        raise SchemaInvalid("Stripe event without id or data.object")
    object_type = obj.get("object")
    base: dict[str, Any] = {
        "event_id": event["id"],
        "event_type": event_type,
        "created": event.get("created", 0),
        "api_version": event.get("api_version"),
        "livemode": bool(event.get("livemode", False)),
        "payment_id": payment_key(event),
        "object_id": obj.get("id"),
        "currency": str(obj.get("currency", "")).upper(),
        "status": obj.get("status"),
    }
    try:
        if object_type == "payment_intent":
            error = obj.get("last_payment_error") or {}
            amount = obj.get("amount_received") or 0
            if not amount:
                amount = _int(obj, "amount")
            return PaymentEvent(
                **base,
                kind=EntryKind.CHARGE,
                amount=amount,
                failure_code=error.get("decline_code") or error.get("code"),
                failure_message=error.get("message"),
            )
        if object_type == "charge" and event_type == "charge.refunded":
            # Cumulative: the refund entry is the step from what was refunded before. Newer API
            # versions also send refund.created for the same refund; settling from one source
            # only (this one) is what keeps a refund from being booked twice.
            return PaymentEvent(**base, kind=EntryKind.REFUND, amount=_int(obj, "amount_refunded"))
        if object_type == "dispute" and event_type == "charge.dispute.created":
            return PaymentEvent(**base, kind=EntryKind.DISPUTE, amount=_int(obj, "amount"))
    except ValidationError as exc:
        raise SchemaInvalid(f"Stripe {event_type} event is missing fields: {exc}") from exc
    return None


class SettlementCommand(BaseModel):
    """A person's decision on a large payment, as the API publishes it to
    ``payments.settlement.commands`` (JSON, keyed by the payment id)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    settlement_id: str = Field(min_length=1)
    decision: Literal["approve", "reject"]
    actor: str = Field(min_length=1)
    at: AwareDatetime
    # Why the person decided so; kept in the settlement's reason and its audit trail.
    reason: str | None = Field(default=None, max_length=2000)

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


def parse_command(raw: bytes | None) -> SettlementCommand:
    """Raises :class:`Undecodable` (not JSON) or :class:`SchemaInvalid` (wrong shape)."""
    try:
        data = json.loads(raw or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Undecodable(f"settlement command is not JSON: {exc}") from exc
    try:
        return SettlementCommand.model_validate(data)
    except ValidationError as exc:
        raise SchemaInvalid(f"settlement command is invalid: {exc}") from exc


def created_at(event: dict[str, Any]) -> datetime | None:
    """Stripe's ``created`` (Unix seconds) as an aware datetime."""
    value = event.get("created")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return datetime.fromtimestamp(value, UTC)
