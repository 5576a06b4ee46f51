"""Settlement decisions on real Stripe payloads (samples/stripe), no I/O."""

import copy
import json
from typing import Any

import pytest

from streams.payments.events import EntryKind, parse, payment_key
from streams.payments.settlement import (
    Action,
    ApprovalPolicy,
    Settlement,
    SettlementState,
    after_approval,
    decide,
)
from synapseops.errors import SchemaInvalid, Undecodable
from tests.fixtures import SAMPLES

STRIPE = SAMPLES / "stripe"
NO_APPROVAL = ApprovalPolicy({})


def load(name: str) -> dict[str, Any]:
    return json.loads((STRIPE / "events" / name).read_bytes())


def raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def with_type(event: dict[str, Any], event_type: str, **changes: Any) -> dict[str, Any]:
    copied = copy.deepcopy(event)
    copied["type"] = event_type
    copied["id"] = f"{copied['id']}_{event_type}"
    copied["data"]["object"].update(changes)
    return copied


def entry(event_bytes: bytes, state: SettlementState) -> Settlement:
    parsed = parse(event_bytes)
    assert parsed is not None
    return Settlement(
        decide(parsed, None, NO_APPROVAL).settlement_id,
        parsed.payment_id,
        parsed.kind,
        parsed.amount,
        parsed.currency,
        state,
    )


def test_succeeded_2019_shape_settles_exact_minor_units() -> None:
    event = parse((STRIPE / "events" / "payment_intent.succeeded.json").read_bytes())
    assert event is not None
    assert (event.payment_id, event.amount, event.currency) == (
        "pi_1FG742B7kbjcJ8QqGKF6qIM0",
        190200,
        "USD",
    )
    decision = decide(event, None, NO_APPROVAL)
    assert decision.action is Action.SETTLE
    assert decision.settlement_id == "stl_pi_1FG742B7kbjcJ8QqGKF6qIM0_charge"
    assert decision.amount == 190200


def test_failed_records_the_decline_code() -> None:
    event = parse(raw(load("payment_intent.payment_failed.json")))
    assert event is not None
    decision = decide(event, None, NO_APPROVAL)
    assert (decision.action, decision.state, decision.reason) == (
        Action.RECORD,
        SettlementState.FAILED,
        "generic_decline",
    )


def test_settled_never_moves_backwards() -> None:
    succeeded = load("payment_intent.succeeded.json")
    late_failure = with_type(succeeded, "payment_intent.payment_failed")
    settled = entry(raw(succeeded), SettlementState.SETTLED)
    for late in (late_failure, succeeded, with_type(succeeded, "payment_intent.created")):
        parsed = parse(raw(late))
        assert parsed is not None
        assert decide(parsed, settled, NO_APPROVAL).action is Action.IGNORE


def test_failed_then_succeeded_moves_forward() -> None:
    succeeded = load("payment_intent.succeeded.json")
    failed = entry(
        raw(with_type(succeeded, "payment_intent.payment_failed")), SettlementState.FAILED
    )
    parsed = parse(raw(succeeded))
    assert parsed is not None
    assert decide(parsed, failed, NO_APPROVAL).action is Action.SETTLE


def test_large_payment_waits_for_approval_and_a_person_decides() -> None:
    parsed = parse(raw(load("payment_intent.succeeded.json")))
    assert parsed is not None
    policy = ApprovalPolicy({"USD": 100_000})
    decision = decide(parsed, None, policy)
    assert (decision.action, decision.state) == (
        Action.AWAIT_APPROVAL,
        SettlementState.PENDING_APPROVAL,
    )
    waiting = entry(raw(load("payment_intent.succeeded.json")), SettlementState.PENDING_APPROVAL)
    assert decide(parsed, waiting, policy).action is Action.IGNORE  # duplicate while waiting
    assert after_approval(waiting, True, "ops@example.com").action is Action.SETTLE
    rejected = after_approval(waiting, False, "ops@example.com")
    assert (rejected.state, rejected.reason) == (
        SettlementState.FAILED,
        "rejected by ops@example.com",
    )
    assert ApprovalPolicy({"EUR": 1}).needs_approval(190200, "usd") is False


def test_cumulative_refunds_book_each_step_once() -> None:
    refunded = load("charge.refunded.json")
    first = parse(raw(refunded))
    assert first is not None and first.kind is EntryKind.REFUND
    step = decide(first, None, NO_APPROVAL)
    assert (step.action, step.amount) == (Action.SETTLE, 100)
    more = parse(raw(with_type(refunded, "charge.refunded", amount_refunded=250)))
    assert more is not None
    assert decide(more, None, NO_APPROVAL, refunded_before=100).amount == 150
    # The earlier total arriving late books nothing.
    assert decide(first, None, NO_APPROVAL, refunded_before=250).action is Action.IGNORE


def test_dispute_is_its_own_entry() -> None:
    dispute = json.loads((STRIPE / "dispute.json").read_bytes())
    event = {
        "id": "evt_dp",
        "object": "event",
        "type": "charge.dispute.created",
        "created": 1,
        "data": {"object": dispute},
    }
    parsed = parse(raw(event))
    assert parsed is not None
    assert parsed.payment_id == "ch_1PgafuB7WZ01zgkWXYmPNZs8"
    assert (
        decide(parsed, None, NO_APPROVAL).settlement_id == "stl_dp_1Pgc71B7WZ01zgkWMevJiAUx_dispute"
    )


def test_unsettled_types_are_not_events_for_settlement() -> None:
    assert parse((STRIPE / "event.json").read_bytes()) is None  # plan.created


def test_payment_key_is_the_payment_intent() -> None:
    assert payment_key(load("payment_intent.succeeded.json")) == "pi_1FG742B7kbjcJ8QqGKF6qIM0"
    assert payment_key(load("charge.refunded.json")) == "ch_1PgafuB7WZ01zgkWXYmPNZs8"


def test_bad_bytes_are_refused_clearly() -> None:
    with pytest.raises(Undecodable):
        parse(b"\xff\x00not json")
    with pytest.raises(SchemaInvalid, match="envelope"):
        parse(b'{"object": "charge"}')


def test_a_rejection_keeps_the_persons_reason() -> None:
    waiting = entry(raw(load("payment_intent.succeeded.json")), SettlementState.PENDING_APPROVAL)
    decision = after_approval(waiting, False, "ops@example.com", "card testing pattern")
    assert decision.reason == "rejected by ops@example.com: card testing pattern"
