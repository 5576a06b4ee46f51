"""Payment Gateway pieces without I/O: resumed decisions, finance answers, record decoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sinks.payments.finance import SettlementRequest, _refusal
from streams.payments.events import EntryKind, PaymentEvent, decode, parse, parse_command
from streams.payments.pipeline import event_record
from streams.payments.settlement import (
    Action,
    ApprovalPolicy,
    Settlement,
    SettlementState,
    after_approval,
    decide,
)
from streams.road import RoadRecord
from synapseops import headers as h
from synapseops.errors import (
    FinanceRefused,
    SchemaInvalid,
    TargetRejected,
    TargetUnavailable,
    Undecodable,
    classify,
)

POLICY = ApprovalPolicy({"USD": 100_000})


def charge(state: SettlementState, amount: int = 500, approval: str | None = None) -> Settlement:
    return Settlement("stl_pi_1_charge", "pi_1", EntryKind.CHARGE, amount, "USD", state, approval)


def event(event_type: str, amount: int = 500, kind: EntryKind = EntryKind.CHARGE) -> PaymentEvent:
    return PaymentEvent(
        event_id="evt_1",
        event_type=event_type,
        created=1,
        api_version=None,
        livemode=False,
        payment_id="pi_1",
        object_id="ch_1" if kind is EntryKind.REFUND else "pi_1",
        kind=kind,
        amount=amount,
        currency="USD",
    )


def test_a_pending_refund_is_settled_again_with_its_stored_amount() -> None:
    pending = Settlement(
        "stl_ch_1_refund_300", "pi_1", EntryKind.REFUND, 200, "USD", SettlementState.PENDING
    )
    decision = decide(event("charge.refunded", 300, EntryKind.REFUND), pending, POLICY, 300)
    assert (decision.action, decision.amount) == (Action.SETTLE, 200)
    settled = Settlement(
        "stl_ch_1_refund_300", "pi_1", EntryKind.REFUND, 200, "USD", SettlementState.SETTLED
    )
    assert decide(event("charge.refunded", 300, EntryKind.REFUND), settled, POLICY).action is (
        Action.IGNORE
    )


def test_an_approved_large_charge_is_not_sent_back_to_the_inbox() -> None:
    approved = charge(SettlementState.PENDING, 500_000, approval="approve")
    decision = decide(event("payment_intent.succeeded", 500_000), approved, POLICY)
    assert decision.action is Action.SETTLE
    # The approval command redelivered while finance was down: settle again, same key.
    assert after_approval(approved, True, "ops").action is Action.SETTLE
    assert after_approval(approved, False, "ops").action is Action.IGNORE


def test_a_rejected_charge_stays_failed() -> None:
    rejected = charge(SettlementState.FAILED, 500_000, approval="reject")
    assert decide(event("payment_intent.succeeded", 500_000), rejected, POLICY).action is (
        Action.IGNORE
    )
    assert after_approval(rejected, True, "ops").action is Action.IGNORE


def test_pending_without_approval_still_waits_when_large() -> None:
    opened = charge(SettlementState.PENDING, 500_000)
    assert decide(event("payment_intent.succeeded", 500_000), opened, POLICY).action is (
        Action.AWAIT_APPROVAL
    )


@pytest.mark.parametrize(
    ("status", "body", "kind", "reason"),
    [
        (402, '{"error": "account_frozen"}', FinanceRefused, "account_frozen"),
        (400, '{"error": "invalid_request", "message": "x"}', FinanceRefused, "invalid_request"),
        (451, "not json", FinanceRefused, "finance refused with 451"),
        (409, '{"error": "idempotency_key_in_flight"}', TargetUnavailable, None),
        (422, '{"error": "idempotency_key_reused"}', TargetRejected, None),
        (401, "", TargetRejected, None),
    ],
)
def test_finance_answers_map_onto_the_error_tree(
    status: int, body: str, kind: type[Exception], reason: str | None
) -> None:
    error = _refusal(TargetRejected(f"finance answered {status}", status=status, body=body))
    assert type(error) is kind
    expected = {FinanceRefused: "rejected", TargetUnavailable: "retryable"}.get(kind, "fatal")
    assert classify(error) == expected
    if reason is not None:
        assert isinstance(error, FinanceRefused) and error.reason == reason


def test_the_finance_body_is_the_same_on_every_try() -> None:
    request = SettlementRequest("stl_pi_1_charge", "pi_1", "charge", 1099, "USD")
    assert request.body() == SettlementRequest(**request.__dict__).body()
    assert set(request.body()) == {"payment_id", "amount", "currency", "kind", "settlement_id"}


def test_event_record_keeps_raw_bytes_headers_and_trace() -> None:
    body = json.dumps(
        {
            "id": "evt_9",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": 1_700_000_000,
            "api_version": "2024-06-20",
            "livemode": False,
            "data": {"object": {"id": "pi_9", "object": "payment_intent", "amount": 5}},
        }
    ).encode()
    traceparent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    headers = [
        (h.EVENT_ID, b"evt_9"),
        (h.RECEIVED_AT, b"2026-01-02T03:04:05.123Z"),
        (h.HTTP_HEADERS, b'{"stripe-signature": "t=1,v1=x", "authorization": "Bearer s"}'),
        (h.TRACEPARENT, traceparent.encode()),
    ]
    record = RoadRecord("payments.stripe.events", 3, 42, None, b"pi_9", body, headers)
    row = event_record(record, decode(body), parse(body))
    assert (row.event_id, row.payment_id, row.raw) == ("evt_9", "pi_9", body)
    assert row.http_headers == {"stripe-signature": "t=1,v1=x"}  # credentials never stored
    assert row.trace_id == "a" * 32
    assert row.received_at == datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert row.created == datetime.fromtimestamp(1_700_000_000, UTC)
    assert (row.partition, row.offset) == (3, 42)


def test_settlement_commands_are_validated() -> None:
    good = (
        b'{"settlement_id": "stl_1", "decision": "approve", "actor": "a",'
        b' "at": "2026-01-01T00:00:00Z"}'
    )
    assert parse_command(good).decision == "approve"
    with pytest.raises(Undecodable):
        parse_command(b"{nope")
    with pytest.raises(SchemaInvalid):
        parse_command(b'{"settlement_id": "stl_1", "decision": "maybe", "actor": "a", "at": 1}')
    with pytest.raises(SchemaInvalid):  # a naive time says nothing about when
        parse_command(
            b'{"settlement_id": "s", "decision": "reject", "actor": "a", "at": "2026-01-01T00:00"}'
        )
