"""Exactly-once settlement under chaos: the issue's proof, with a real worker killed twice.

10,000 Stripe events (``SYNAPSEOPS_CHAOS_EVENTS`` overrides) of several types — created,
succeeded, payment_failed, charge.refunded (cumulative, partial then full), dispute — built from
the real fixtures with fresh ids, go straight to ``payments.stripe.events`` keyed by payment:
10% delivered twice, 5% swapped with the next event of their payment. Meanwhile the sandbox
finance ledger fails 20% of calls with 503 and, in bursts, answers slower than the client's
timeout (after booking), and the ``synapseops worker`` subprocess (tiers 1s,2s,3s) is killed
with SIGKILL twice and restarted.

At the end, counted by id: every settleable settlement id has exactly one ledger entry (an id
missing from the ledger must be one whose event is a dead letter), no key twice, nothing booked
that should not be, every accepted event is processed or dead, and the reconciliation report
(sinks.payments.queries) agrees with those counts.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
import sqlalchemy
from confluent_kafka import Producer
from sqlalchemy import func, select

from sandbox.harness import SandboxServer
from sinks.dead_letters.tables import dead_letters
from sinks.payments.reconciliation import reconciliation
from sinks.payments.tables import payment_events, settlements
from synapseops import headers as h
from synapseops.kafka import producer_config
from synapseops.settings import KafkaSettings
from tests.integration.databases import fresh_database
from tests.integration.groups import TIERS, start_groups_at_end
from tests.integration.payments.factory import PaymentFactory, StripeEvent
from tests.integration.worker_process import WorkerProcess
from topics.registry import STRIPE_EVENTS

pytestmark = pytest.mark.integration

EVENTS = int(os.environ.get("SYNAPSEOPS_CHAOS_EVENTS", "10000"))
THRESHOLD = 1_000_000
FINISH_DEADLINE_S = 600.0


@dataclass
class Plan:
    """What was sent, and what the ledger must hold because of it."""

    records: list[StripeEvent] = field(default_factory=list)
    event_ids: set[str] = field(default_factory=set)
    settleable: dict[str, int] = field(default_factory=dict)  # settlement id -> amount
    waiting: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)


def build_plan(target: int, rng: random.Random) -> Plan:
    plan = Plan()
    per_payment: list[tuple[PaymentFactory, list[StripeEvent]]] = []
    count = 0
    while count < target / 1.1:  # the 10% duplicates bring it to ~target records
        kind = rng.random()
        amount = rng.randrange(100, 90_000)
        if rng.random() < 0.01:
            amount = THRESHOLD * 2  # a large payment: waits for a person
        payment = PaymentFactory(currency=rng.choice(["usd", "eur", "gbp"]), amount=amount)
        if kind < 0.55:
            events = [payment.created_event(), payment.succeeded()]
        elif kind < 0.70:
            events = [payment.payment_failed(), payment.succeeded()]
        elif kind < 0.80:
            events = [payment.created_event(), payment.payment_failed()]
        elif kind < 0.92:
            payment.amount = min(amount, 90_000)
            partial = max(1, payment.amount // 3)
            events = [payment.succeeded(), payment.refunded(partial)]
            events.append(payment.refunded(payment.amount))
        else:
            payment.amount = min(amount, 90_000)
            events = [payment.succeeded(), payment.dispute(max(1, payment.amount // 2))]
        # 5% out of order: an event swaps places with the next one of its payment.
        for i in range(len(events) - 1):
            if rng.random() < 0.05:
                events[i], events[i + 1] = events[i + 1], events[i]
        per_payment.append((payment, events))
        count += len(events)
    _expect(plan, per_payment)
    # Interleave payments the way traffic arrives, keeping each payment's own order.
    queues = [list(events) for _, events in per_payment]
    while queues:
        index = rng.randrange(len(queues))
        plan.records.append(queues[index].pop(0))
        if not queues[index]:
            queues.pop(index)
    # 10% delivered twice: the same bytes again, a little later.
    for position in sorted(rng.sample(range(len(plan.records)), len(plan.records) // 10))[::-1]:
        later = min(len(plan.records), position + rng.randrange(1, 200))
        plan.records.insert(later, plan.records[position])
    plan.event_ids = {event.event_id for event in plan.records}
    return plan


def _expect(plan: Plan, per_payment: list[tuple[PaymentFactory, list[StripeEvent]]]) -> None:
    """What the state machine must make of each payment's events, in the order sent."""
    for payment, events in per_payment:
        types = [str(e.event["type"]) for e in events]
        if "payment_intent.succeeded" in types:
            if payment.amount >= THRESHOLD:
                plan.waiting.add(payment.charge_settlement)
            else:
                plan.settleable[payment.charge_settlement] = payment.amount
        elif "payment_intent.payment_failed" in types:
            plan.failed.add(payment.charge_settlement)
        booked = 0
        for event in events:
            obj = event.event["data"]["object"]
            if event.event["type"] == "charge.refunded" and obj["amount_refunded"] > booked:
                total = obj["amount_refunded"]
                plan.settleable[payment.refund_settlement(total)] = total - booked
                booked = total
            if event.event["type"] == "charge.dispute.created":
                plan.settleable[payment.dispute_settlement] = obj["amount"]


@contextmanager
def chaos_worker(
    kafka_bootstrap: str, database: str, sandbox: SandboxServer, tmp_path: Path
) -> Iterator[WorkerProcess]:
    group = f"t-pay-chaos-{uuid4().hex[:8]}"
    start_groups_at_end(KafkaSettings(bootstrap=kafka_bootstrap), group)
    worker = WorkerProcess(
        kafka_bootstrap,
        database,
        tmp_path,
        tiers=TIERS,
        group_id=group,
        extra_env={
            "SYNAPSEOPS_LOG_LEVEL": "WARNING",
            "SYNAPSEOPS_PAYMENTS_FINANCE_URL": f"{sandbox.url}/finance",
            "SYNAPSEOPS_PAYMENTS_FINANCE_TIMEOUT_S": "0.5",
            "SYNAPSEOPS_PAYMENTS_APPROVAL_THRESHOLDS": (
                f'{{"USD": {THRESHOLD}, "EUR": {THRESHOLD}, "GBP": {THRESHOLD}}}'
            ),
        },
    )
    try:
        yield worker
    finally:
        worker.stop()
        print(worker.log_tail(3000))


class FaultCycle(threading.Thread):
    """20% 503s all along; every few seconds a burst slower than the client's timeout."""

    def __init__(self, sandbox_url: str) -> None:
        super().__init__(name="fault-cycle", daemon=True)
        self.url = f"{sandbox_url}/_sandbox/faults"
        self.stopping = threading.Event()
        self.bursts = 0

    def set(self, latency_ms: int) -> None:
        fault = {"target": "finance", "error_rate": 0.2, "status": 503, "seed": 7}
        httpx.post(self.url, json=fault | {"latency_ms": latency_ms}).raise_for_status()

    def run(self) -> None:
        self.set(0)
        while not self.stopping.wait(6.0):
            self.set(700)  # the client gives up at 500 ms; finance books anyway
            self.bursts += 1
            self.stopping.wait(0.8)
            self.set(0)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        httpx.delete(self.url).raise_for_status()


def produce(kafka_bootstrap: str, plan: Plan) -> None:
    producer = Producer(producer_config(KafkaSettings(bootstrap=kafka_bootstrap)))
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for event in plan.records:
        producer.produce(
            STRIPE_EVENTS.name,
            event.body,
            key=event.key.encode(),
            headers=event.headers(),  # type: ignore[arg-type]
            on_delivery=delivered,
        )
        producer.poll(0)
    assert producer.flush(60) == 0 and not failures, failures[:3]


def finished(engine: sqlalchemy.Engine, plan: Plan) -> tuple[int, int]:
    """(events processed, events dead) among those sent."""
    with engine.connect() as conn:
        processed = set(
            conn.execute(
                select(payment_events.c.event_id).where(payment_events.c.processed_at.isnot(None))
            ).scalars()
        )
        dead = set(
            conn.execute(
                select(dead_letters.c.headers[h.EVENT_ID].astext).where(
                    dead_letters.c.original_topic == STRIPE_EVENTS.name
                )
            ).scalars()
        )
    return len(processed & plan.event_ids), len((dead - processed) & plan.event_ids)


def wait_for(engine: sqlalchemy.Engine, plan: Plan, fraction: float, deadline: float) -> None:
    goal = int(len(plan.event_ids) * fraction)
    while time.monotonic() < deadline:
        processed, dead = finished(engine, plan)
        if processed + dead >= goal:
            return
        time.sleep(0.5)
    processed, dead = finished(engine, plan)
    pytest.fail(f"{processed} processed + {dead} dead of {len(plan.event_ids)} by the deadline")


def test_ten_thousand_events_settle_exactly_once_through_kills_and_faults(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    plan = build_plan(EVENTS, random.Random(20251126))
    with (
        fresh_database(database_url, "t_payments") as database,
        SandboxServer() as sandbox,
        chaos_worker(kafka_bootstrap, database, sandbox, tmp_path) as worker,
    ):
        engine = sqlalchemy.create_engine(database)
        faults = FaultCycle(sandbox.url)
        started = time.monotonic()
        deadline = started + FINISH_DEADLINE_S
        try:
            worker.start()
            worker.wait_healthy()
            faults.start()
            produce(kafka_bootstrap, plan)
            kills = []
            marks = [("produced", time.monotonic() - started)]
            for fraction in (0.25, 0.6):
                wait_for(engine, plan, fraction, deadline)
                assert worker.process is not None and worker.process.poll() is None
                worker.kill_9()
                kills.append(finished(engine, plan))
                marks.append(("killed", time.monotonic() - started))
                worker.start()
                worker.wait_healthy()
                marks.append(("restarted", time.monotonic() - started))
            wait_for(engine, plan, 1.0, deadline)
            took = time.monotonic() - started
        finally:
            faults.stop()
        ledger = httpx.get(f"{sandbox.url}/_sandbox/finance/ledger").json()["entries"]
        attempts = httpx.get(f"{sandbox.url}/_sandbox/finance/attempts").json()
        print(
            f"\n{len(plan.records)} records ({len(plan.event_ids)} distinct events) "
            f"in {took:.0f}s; "
            f"killed at {kills}; {len(attempts)} finance calls, {faults.bursts} slow bursts; "
            f"{len(ledger)} ledger entries; marks {[(n, round(t)) for n, t in marks]}"
        )
        verify(engine, plan, ledger)
        engine.dispose()


def verify(engine: sqlalchemy.Engine, plan: Plan, ledger: list[dict[str, Any]]) -> None:
    keys = Counter(entry["key"] for entry in ledger)
    assert [key for key, n in keys.items() if n > 1] == [], "a settlement was booked twice"
    with engine.connect() as conn:
        rows = {r["settlement_id"]: r for r in conn.execute(select(settlements)).mappings()}
        dead_events = set(
            conn.execute(
                select(dead_letters.c.headers[h.EVENT_ID].astext).where(
                    dead_letters.c.original_topic == STRIPE_EVENTS.name
                )
            ).scalars()
        )
        unprocessed = dict(
            conn.execute(
                select(payment_events.c.event_id, payment_events.c.settlement_id).where(
                    payment_events.c.processed_at.is_(None)
                )
            ).all()
        )
    # Nothing booked that should not be: no waiting or failed entry reached the ledger.
    assert not (set(keys) & (plan.waiting | plan.failed))
    # Every event is processed or dead; an unprocessed one is dead.
    assert set(unprocessed) - dead_events == set(), "an event neither processed nor dead"
    dead_settlements = {sid for eid, sid in unprocessed.items() if sid}
    # Every settleable id is booked once, or its event is a dead letter (replay finishes it).
    missing = set(plan.settleable) - set(keys)
    assert missing <= dead_settlements, f"missing without a dead letter: {sorted(missing)[:5]}"
    for sid, amount in plan.settleable.items():
        row = rows.get(sid)
        if sid in keys:
            (entry,) = [e for e in ledger if e["key"] == sid]
            assert entry["amount"] == amount, sid
            if row is not None and row["state"] == "settled":
                assert row["finance_reference"] == entry["reference"], sid
        if sid not in dead_settlements:
            assert row is not None and row["state"] == "settled", (sid, row and row["state"])
    for sid in plan.waiting:
        assert rows[sid]["state"] == "pending_approval"
    for sid in plan.failed:
        assert rows[sid]["state"] == "failed"
    # The reconciliation report agrees with the tables, bucket by bucket.
    report = reconciliation(engine, datetime.now(UTC).date())
    print(
        f"reconciliation: accepted {report.accepted.count}, "
        + ", ".join(f"{name} {bucket.count}" for name, bucket in report.buckets.items())
    )
    stored_ids = _stored_ids(engine)
    processed = stored_ids - set(unprocessed)
    # A duplicate delivery may settle an event whose other copy died: it counts once, in its
    # outcome's bucket; dead are the events nothing finished.
    assert report.accepted.count == len(stored_ids | dead_events)
    assert report.balanced, "every accepted event in exactly one bucket"
    assert report.buckets["dead"].count == len(dead_events - processed)
    assert report.buckets["pending"].count == 0
    assert report.buckets["settled"].count == _count_outcome(engine, "settled")
    assert report.buckets["failed"].count == _count_outcome(engine, "failed")
    no_effect = _count_outcome(engine, "recorded") + _count_outcome(engine, "ignored")
    assert report.buckets["no_effect"].count == no_effect
    assert report.buckets["pending_approval"].count == len(plan.waiting)


def _count_outcome(engine: sqlalchemy.Engine, outcome: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(payment_events)
                .where(payment_events.c.outcome == outcome)
            ).scalar_one()
        )


def _stored_ids(engine: sqlalchemy.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(payment_events.c.event_id)).scalars())
