"""A settlement batch costs the same few PostgreSQL round trips whatever its size, counted at
the driver on a real PostgreSQL (an ``executemany`` counted once per row, as psycopg2 sends it).

On the code before the batch's driver SQL (09ccc1d) the decide transaction sent BEGIN, six
statements and COMMIT and the record transaction the same: 16 round trips per batch, against 4
now (each transaction two messages, its BEGIN in the first and its COMMIT in the last); and the
decide stored each event, then updated it with what it did (two writes of a ~1.5 KB row with
six indexes), where now it stores it once with its outcome.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from sinks.payments.tables import payment_events
from streams.road import Outcome
from tests.integration.payments.factory import PaymentFactory
from tests.integration.payments.round_trips import wire_round_trips
from tests.integration.payments.test_payments_batch import run_batch
from tests.integration.payments.test_payments_pipeline import (
    Harness,
    database,
    harness,
    record,
    sandbox,
)

__all__ = ["database", "harness", "sandbox"]  # fixtures shared with test_payments_pipeline

pytestmark = pytest.mark.integration

ROUND_TRIPS_PER_BATCH = 4  # decide: BEGIN + locks + reads, writes + COMMIT; record: the same


def settle(harness: Harness, count: int) -> list[str]:
    payments = [PaymentFactory(amount=3000 + i) for i in range(count)]
    with wire_round_trips(harness.engine) as sent:
        results = run_batch(harness, [record(p.succeeded()) for p in payments])
    assert [r.status for r in results if isinstance(r, Outcome)] == ["done"] * count
    for payment in payments:
        (entry,) = harness.ledger(payment.charge_settlement)
        assert harness.settlement(payment.charge_settlement)["state"] == "settled"
        assert entry["amount"] == payment.amount
    return list(sent)


def test_a_batch_costs_the_same_few_round_trips_whatever_its_size(harness: Harness) -> None:
    small, large = settle(harness, 5), settle(harness, 150)
    print(f"\nround trips: {len(small)} for 5 payments, {len(large)} for 150")
    assert len(small) == len(large) <= ROUND_TRIPS_PER_BATCH
    begins = [text for text in small if text.startswith("BEGIN")]
    commits = [text for text in small if text.endswith("COMMIT")]
    assert len(begins) == len(commits) == 2  # decide, record: each one folded transaction
    assert not any(text in ("BEGIN", "COMMIT") for text in small)  # no message of their own


def test_the_decide_stores_each_event_once_with_what_it_did(harness: Harness) -> None:
    sent = settle(harness, 20)
    decide = sent[: next(i for i, text in enumerate(sent) if text.endswith("COMMIT")) + 1]
    assert not any("UPDATE payment_events" in text for text in decide)
    assert sum(text.count("INSERT INTO payment_events") for text in decide) == 1
    payment = PaymentFactory(amount=4100)
    harness.fault(status=503, count=1)  # finance down: the event stays in flight, unprocessed
    run_batch(harness, [record(payment.succeeded())])
    (stored,) = harness.rows(payment_events, payment_id=payment.pi)
    assert stored["processed_at"] is None and stored["outcome"] is None
    assert stored["settlement_id"] == payment.charge_settlement


def _event_updates(harness: Harness) -> tuple[int, int]:
    query = text(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'payment_events'"
    )
    with harness.engine.connect() as conn:
        upd, hot = conn.execute(query).one()
    return int(upd), int(hot)


def test_marking_a_settled_event_touches_no_index(harness: Harness) -> None:
    """Migration 0017: the mark after finance answered is a HOT update (the new row version on
    the old one's page, no index entry written). With the default fillfactor ~85% of them
    wrote the ~1.7 KB row elsewhere and an entry into each of the six indexes."""
    harness.engine.dispose()  # a backend's statistics reach pg_stat_* at the latest when it ends
    before = _event_updates(harness)
    settle(harness, 150)
    harness.engine.dispose()
    deadline = time.monotonic() + 15
    upd, hot = _event_updates(harness)
    while upd - before[0] < 150 and time.monotonic() < deadline:
        time.sleep(0.2)
        upd, hot = _event_updates(harness)
    assert upd - before[0] >= 150, "the marks never reached the statistics"
    assert hot - before[1] == upd - before[0]
