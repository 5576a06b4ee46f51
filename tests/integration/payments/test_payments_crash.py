"""kill -9 of the payments worker in the middle of a burst: nothing lost, nothing booked twice.

Thousands of Stripe events (``SYNAPSEOPS_CRASH_EVENTS``, default 2,400) are on
``payments.stripe.events`` before the worker starts — a succeeded event for each payment, and
for every third payment a partial refund right behind it — so the worker meets a full topic
and takes as much at once as the road gives it. It is killed with SIGKILL while settling, with
decided-but-unrecorded bookings and finance calls in flight, and started again. Counted by
payment id at the end: every settlement is in the ledger exactly once and in the settlements
table once, settled with that very ledger reference, and every event is processed.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
import sqlalchemy
from confluent_kafka import Producer
from sqlalchemy import func, select

from sandbox.harness import SandboxServer
from sinks.payments.tables import payment_events, settlements
from synapseops.kafka import producer_config
from synapseops.settings import KafkaSettings, RetrySettings, Settings
from tests.integration.databases import fresh_database
from tests.integration.groups import TIERS, start_groups_at_end
from tests.integration.payments.factory import PaymentFactory, StripeEvent
from tests.integration.worker_process import WorkerProcess
from topics.admin import apply_topics
from topics.registry import STRIPE_EVENTS

pytestmark = pytest.mark.integration

EVENTS = int(os.environ.get("SYNAPSEOPS_CRASH_EVENTS", "2400"))
DEADLINE_S = 600.0


def burst(count: int) -> tuple[list[StripeEvent], dict[str, tuple[str, int]]]:
    """The events, and each settlement they must book: id -> (payment id, amount)."""
    events: list[StripeEvent] = []
    expected: dict[str, tuple[str, int]] = {}
    while len(events) < count:
        payment = PaymentFactory(amount=1000 + len(events))
        events.append(payment.succeeded())
        expected[payment.charge_settlement] = (payment.pi, payment.amount)
        if len(expected) % 3 == 0:
            events.append(payment.refunded(400))
            expected[payment.refund_settlement(400)] = (payment.pi, 400)
    return events, expected


def processed(engine: sqlalchemy.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(payment_events.c.processed_at.isnot(None))
            ).scalar_one()
        )


def wait_processed(engine: sqlalchemy.Engine, goal: int, deadline: float) -> int:
    while time.monotonic() < deadline:
        done = processed(engine)
        if done >= goal:
            return done
        time.sleep(0.2)
    pytest.fail(f"{processed(engine)} of {goal} events processed by the deadline")


def test_kill_9_in_the_middle_of_a_burst_settles_every_payment_once(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    events, expected = burst(EVENTS)
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    apply_topics(Settings(kafka=kafka, retry=RetrySettings(tiers=TIERS)))
    group = f"t-pay-crash-{uuid4().hex[:8]}"
    start_groups_at_end(kafka, group)
    producer = Producer(producer_config(kafka))
    for one in events:
        producer.produce(
            STRIPE_EVENTS.name,
            one.body,
            key=one.key.encode(),
            headers=one.headers(),  # type: ignore[arg-type]
        )
        producer.poll(0)
    assert producer.flush(60) == 0
    with fresh_database(database_url, "t_payments") as database, SandboxServer() as sandbox:
        engine = sqlalchemy.create_engine(database)
        worker = WorkerProcess(
            kafka_bootstrap,
            database,
            tmp_path,
            tiers=TIERS,
            group_id=group,
            extra_env={
                "SYNAPSEOPS_LOG_LEVEL": "WARNING",
                "SYNAPSEOPS_WORKER_PIPELINES": "payment-settlement",
                "SYNAPSEOPS_PAYMENTS_FINANCE_URL": f"{sandbox.url}/finance",
            },
        )
        deadline = time.monotonic() + DEADLINE_S
        try:
            worker.start()
            worker.wait_healthy()
            at_kill = wait_processed(engine, len(events) // 3, deadline)
            worker.kill_9()
            assert at_kill < len(events), "the burst was over before the kill"
            worker.start()
            worker.wait_healthy()
            wait_processed(engine, len(events), deadline)
        finally:
            worker.stop()
        ledger = httpx.get(f"{sandbox.url}/_sandbox/finance/ledger").json()["entries"]
        with engine.connect() as conn:
            rows = list(conn.execute(select(settlements)).mappings())
        engine.dispose()
    print(f"\nkilled at {at_kill} of {len(events)} events processed")
    booked = Counter(entry["key"] for entry in ledger)
    assert sorted(booked) == sorted(expected), "a settlement missing from, or extra in, the ledger"
    assert [k for k, n in booked.items() if n > 1] == [], "a settlement was booked twice"
    per_payment = Counter(entry["payment_id"] for entry in ledger)
    assert per_payment == Counter(pi for pi, _ in expected.values())
    assert Counter(row["payment_id"] for row in rows) == per_payment
    references = {entry["key"]: entry["reference"] for entry in ledger}
    for row in rows:
        sid = row["settlement_id"]
        assert (row["state"], row["amount"]) == ("settled", expected[sid][1])
        assert row["finance_reference"] == references[sid]
