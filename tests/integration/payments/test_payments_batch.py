"""Set-based settlement: the gateway's batch handler against real PostgreSQL, Kafka and sandbox.

The batch runs through the road's own :func:`streams.road.batch.process_batch` (failures routed
by the real router to the real broker). On the code as it was every test here fails: the
gateway had no batch handler (``PaymentGateway.batch_handlers``), so a batch was one record
after another, ~17 PostgreSQL round trips and one finance call each.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import httpx
import pytest

from streams.road import Hop, Outcome, Pipeline, RoadRecord
from streams.road.batch import process_batch
from synapseops.errors import TargetUnavailable
from tests.integration.payments.factory import PaymentFactory
from tests.integration.payments.round_trips import round_trips
from tests.integration.payments.test_payments_pipeline import (
    Harness,
    database,
    harness,
    record,
    sandbox,
)

__all__ = ["database", "harness", "sandbox"]  # fixtures shared with test_payments_pipeline

pytestmark = pytest.mark.integration


def batch_pipeline(harness: Harness) -> Pipeline:
    return dataclasses.replace(harness.pipeline, batch_handlers=harness.gateway.batch_handlers)


def run_batch(harness: Harness, records: Sequence[RoadRecord]) -> list[Outcome | Hop]:
    results: list[Outcome | Hop] = harness.run(
        process_batch(batch_pipeline(harness), records, harness.runtime.router)
    )
    return results


def test_a_batch_settles_each_payment_once_in_a_few_round_trips(harness: Harness) -> None:
    singles = [PaymentFactory(amount=1000 + i) for i in range(10)]
    with round_trips(harness.engine) as alone:
        for payment in singles:
            assert harness.handle(record(payment.succeeded())).status == "done"
    payments = [PaymentFactory(amount=2000 + i) for i in range(100)]
    with round_trips(harness.engine) as together:
        results = run_batch(harness, [record(p.succeeded()) for p in payments])
    assert [r.status for r in results if isinstance(r, Outcome)] == ["done"] * len(payments)
    for payment in singles + payments:
        (entry,) = harness.ledger(payment.charge_settlement)
        row = harness.settlement(payment.charge_settlement)
        assert (row["state"], row["finance_reference"]) == ("settled", entry["reference"])
        assert entry["amount"] == payment.amount
    per_record = alone[0] / len(singles)
    per_batch = together[0] / len(payments)
    print(f"\nround trips per settlement: {per_record:.1f} alone, {per_batch:.2f} in a batch")
    assert per_batch * 10 < per_record
    posts = httpx.get(f"{harness.sandbox.url}/_sandbox/finance/attempts").json()
    assert sum(a["path"].endswith("/batch") for a in posts) == 1  # one call for the batch


def test_events_of_one_payment_in_one_batch_apply_in_offset_order(harness: Harness) -> None:
    refunded = PaymentFactory(amount=1000)
    retried = PaymentFactory(amount=700)
    refused = PaymentFactory(prefix="pi_reject", amount=300)
    succeeded = refunded.succeeded()
    events = [
        refunded.created_event(),
        retried.payment_failed(),
        succeeded,
        refunded.refunded(300),
        retried.succeeded(),
        succeeded,  # Stripe delivers again inside the same batch
        refunded.refunded(1000),
        refused.succeeded(),
        refunded.refunded(300),  # late: the cumulative total went past it
    ]
    results = run_batch(harness, [record(e) for e in events])
    assert [r.status if isinstance(r, Outcome) else r for r in results] == [
        "done",
        "done",
        "done",
        "done",
        "done",
        "skipped",
        "done",
        "rejected",
        "skipped",
    ]
    expected = {
        refunded.charge_settlement: ("settled", 1000),
        refunded.refund_settlement(300): ("settled", 300),
        refunded.refund_settlement(1000): ("settled", 700),
        retried.charge_settlement: ("settled", 700),
    }
    for sid, (state, amount) in expected.items():
        row = harness.settlement(sid)
        (entry,) = harness.ledger(sid)
        assert (row["state"], row["amount"], entry["amount"]) == (state, amount, amount)
    assert harness.settlement(refused.charge_settlement)["state"] == "failed"
    assert harness.ledger(refused.charge_settlement) == []


def test_a_poison_event_in_a_batch_is_dead_lettered_alone(harness: Harness) -> None:
    payments = [PaymentFactory(amount=500 + i) for i in range(4)]
    # Finance already holds payment 2's key for another body: its booking can never succeed.
    clash = payments[2]
    httpx.post(
        f"{harness.sandbox.url}/finance/v1/settlements",
        json={"payment_id": clash.pi, "amount": 1, "currency": "USD", "kind": "charge"},
        headers={"Idempotency-Key": clash.charge_settlement},
    ).raise_for_status()
    records = [record(p.succeeded()) for p in payments]
    poison = dataclasses.replace(records[0], value=b"{not json", offset=records[0].offset)
    nameless = dataclasses.replace(records[1], value=b'{"object": "event", "data": {}}')
    batch = [records[0], poison, records[1], nameless, records[2], records[3]]
    batch = [dataclasses.replace(r, offset=i + 10_000) for i, r in enumerate(batch)]
    results = run_batch(harness, batch)
    kinds = [("dead" if r.dead else "retry") if isinstance(r, Hop) else r.status for r in results]
    assert kinds == ["done", "dead", "done", "dead", "dead", "done"]
    for payment in (payments[0], payments[1], payments[3]):
        assert len(harness.ledger(payment.charge_settlement)) == 1
        assert harness.settlement(payment.charge_settlement)["state"] == "settled"
    assert harness.settlement(clash.charge_settlement)["state"] == "pending"


def test_a_value_postgres_refuses_fails_its_own_event_not_the_batch(harness: Harness) -> None:
    # A NUL in a text the decide stores (here the envelope's api_version) makes PostgreSQL's
    # driver refuse the wave's statements, for every event of the batch. Before session 6 the
    # whole batch was answered with that error: four good payments dead-lettered with it.
    payments = [PaymentFactory(amount=700 + i) for i in range(5)]
    events = [p.succeeded() for p in payments]
    events[2].event["api_version"] = "2024-06-20\u0000"
    batch = [dataclasses.replace(record(e), offset=i + 20_000) for i, e in enumerate(events)]
    results = run_batch(harness, batch)
    kinds = [("dead" if r.dead else "retry") if isinstance(r, Hop) else r.status for r in results]
    assert kinds == ["done", "done", "dead", "done", "done"]
    for payment in payments[:2] + payments[3:]:
        assert len(harness.ledger(payment.charge_settlement)) == 1
    assert harness.ledger(payments[2].charge_settlement) == []


def test_a_failed_finance_batch_fails_each_record_and_its_retry_books_once(
    harness: Harness,
) -> None:
    payments = [PaymentFactory(amount=900 + i) for i in range(5)]
    records = [record(p.succeeded()) for p in payments]
    harness.fault(status=503, count=1)
    answers = harness.run(harness.gateway.events(records))
    assert all(isinstance(a, TargetUnavailable) for a in answers)
    # The retry tier hands each record over again, alone: a re-post, looked up first.
    for one in records[:2]:
        assert harness.handle(one).status == "done"
    again = harness.run(harness.gateway.events(records))
    assert [a.status for a in again] == ["skipped", "skipped", "done", "done", "done"]
    for payment in payments:
        assert len(harness.ledger(payment.charge_settlement)) == 1


def test_crossing_lanes_lock_in_one_order_and_book_once(harness: Harness) -> None:
    """The same events in opposite orders on two lanes at once (a retry tier and the main input
    after a rebalance): both transactions of both lanes lock in one order, so no deadlock, and
    each payment is booked once."""
    payments = [PaymentFactory(amount=100 + i) for i in range(40)]
    events = [record(p.succeeded()) for p in payments]
    lanes = (events, [dataclasses.replace(r, partition=1) for r in reversed(events)])

    async def both() -> list[list[Outcome | BaseException]]:
        return list(await asyncio.gather(*(harness.gateway.decide_events(lane) for lane in lanes)))

    answers = [a for lane in harness.run(both()) for a in lane]
    errors = [a for a in answers if isinstance(a, BaseException)]
    # Finance may see one key from both lanes at once (409: retry); the database never fails.
    assert all(isinstance(e, TargetUnavailable) and e.status == 409 for e in errors), errors
    for one in events:  # what a retry tier would do with those
        harness.handle(one)
    for payment in payments:
        (entry,) = harness.ledger(payment.charge_settlement)
        assert (
            harness.settlement(payment.charge_settlement)["finance_reference"] == entry["reference"]
        )
