"""The payment-settlement pipeline's ordinary paths against real PostgreSQL, Kafka and sandbox.

The handler runs in this process on records shaped as the worker hands them over; the finance
ledger is the sandbox's (real HTTP, real Idempotency-Key store). The whole worker under faults
and kill -9 is tests/integration/payments/test_payments_chaos.py.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
import sqlalchemy
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import select

from sandbox.harness import SandboxServer
from schemas.serde import AvroSerde
from schemas.store import schema_store
from sinks.payments.tables import payment_events, settlement_attempts, settlement_audit, settlements
from streams.bootstrap import Runtime
from streams.payments.events import SettlementCommand
from streams.payments.pipeline import PaymentGateway, build_gateway
from streams.road import Hop, Outcome, Pipeline, RoadRecord, process
from synapseops.errors import TargetTimeout
from synapseops.kafka import consumer_config
from synapseops.settings import KafkaSettings, PaymentSettings, RetrySettings, Settings
from tests.integration.databases import fresh_database
from tests.integration.payments.factory import PaymentFactory, StripeEvent
from topics.admin import apply_topics
from topics.registry import (
    NOTIFICATION_TRIGGERS,
    PAYMENT_SETTLEMENT,
    SETTLEMENT_COMMANDS,
    STRIPE_EVENTS,
)

pytestmark = pytest.mark.integration

THRESHOLD = 100_000  # USD minor units: at or above waits for a person
OFFSETS = itertools.count(1)


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_payments") as url:
        yield url


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@dataclass
class Harness:
    gateway: PaymentGateway
    pipeline: Pipeline
    runtime: Runtime
    engine: sqlalchemy.Engine
    sandbox: SandboxServer
    loop: asyncio.AbstractEventLoop

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coroutine)

    def handle(self, record: RoadRecord) -> Outcome:
        outcome: Outcome = self.run(self.pipeline.handle(record))
        return outcome

    def process(self, record: RoadRecord) -> Outcome | Hop:
        result: Outcome | Hop = self.run(process(self.pipeline, record, self.runtime.router))
        return result

    def ledger(self, key: str) -> list[dict[str, Any]]:
        entries = httpx.get(f"{self.sandbox.url}/_sandbox/finance/ledger").json()["entries"]
        return [entry for entry in entries if entry["key"] == key]

    def settlement(self, sid: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(settlements).where(settlements.c.settlement_id == sid))
            return dict(row.mappings().one())

    def rows(self, table: sqlalchemy.Table, **where: Any) -> list[dict[str, Any]]:
        statement = select(table).where(*(table.c[k] == v for k, v in where.items()))
        with self.engine.connect() as conn:
            return [
                dict(r)
                for r in conn.execute(
                    statement.order_by(table.c[next(iter(table.primary_key.columns)).name])
                ).mappings()
            ]

    def fault(self, **fault: Any) -> None:
        response = httpx.post(
            f"{self.sandbox.url}/_sandbox/faults", json={"target": "finance", **fault}
        )
        response.raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.sandbox.url}/_sandbox/faults").raise_for_status()

    def booked_unheard(self, record: RoadRecord) -> None:
        """Handle ``record`` while finance is slower than the client's 0.5 s timeout: finance
        books it, the gateway never hears (TargetTimeout), and the booking completes."""
        self.fault(latency_ms=1200)
        with pytest.raises(TargetTimeout):
            self.handle(record)
        self.clear_faults()
        time.sleep(1.0)  # the slow request completes inside the sandbox


@pytest.fixture
def harness(database: str, sandbox: SandboxServer, kafka_bootstrap: str) -> Iterator[Harness]:
    settings = Settings(
        kafka=KafkaSettings(bootstrap=kafka_bootstrap),
        retry=RetrySettings(tiers="1s,2s,3s"),
        payments=PaymentSettings(
            finance_url=f"{sandbox.url}/finance",
            finance_timeout_s=0.5,
            approval_thresholds={"USD": THRESHOLD},
        ),
    )
    apply_topics(settings)
    loop = asyncio.new_event_loop()
    engine = sqlalchemy.create_engine(database)
    runtime = Runtime.build(settings, engine)
    gateway = build_gateway(settings, runtime)
    pipeline = Pipeline.declared(PAYMENT_SETTLEMENT, gateway.handlers, settings)
    yield Harness(gateway, pipeline, runtime, engine, sandbox, loop)
    httpx.delete(f"{sandbox.url}/_sandbox/faults")
    loop.run_until_complete(gateway.finance.aclose())
    loop.close()
    runtime.producer.close()
    engine.dispose()


def record(event: StripeEvent) -> RoadRecord:
    return RoadRecord(
        topic=STRIPE_EVENTS.name,
        partition=0,
        offset=next(OFFSETS),
        timestamp_ms=int(time.time() * 1000),
        key=event.key.encode(),
        value=event.body,
        headers=event.headers(),
    )


def command(payment: PaymentFactory, decision: str, actor: str = "ops@example.com") -> RoadRecord:
    body = SettlementCommand(
        settlement_id=payment.charge_settlement,
        decision=decision,  # type: ignore[arg-type]
        actor=actor,
        at=datetime.now(UTC),
    ).encode()
    return RoadRecord(
        topic=SETTLEMENT_COMMANDS.name,
        partition=0,
        offset=next(OFFSETS),
        timestamp_ms=None,
        key=payment.pi.encode(),
        value=body,
        headers=[],
    )


def test_succeeded_settles_once_and_keeps_the_raw_event(harness: Harness) -> None:
    payment = PaymentFactory(amount=4321)
    created, succeeded = payment.created_event(), payment.succeeded()
    assert (harness.handle(record(created))).status == "done"
    assert harness.settlement(payment.charge_settlement)["state"] == "pending"
    outcome = harness.handle(record(succeeded))
    assert outcome.status == "done"
    # Stripe delivers again: the event id is known and processed.
    again = harness.handle(record(succeeded))
    assert again == Outcome("skipped", f"event {succeeded.event_id} already processed")

    row = harness.settlement(payment.charge_settlement)
    (entry,) = harness.ledger(payment.charge_settlement)
    assert (row["state"], row["amount"], row["currency"]) == ("settled", 4321, "USD")
    assert row["finance_reference"] == entry["reference"]
    assert (entry["amount"], entry["currency"], entry["payment_id"]) == (4321, "USD", payment.pi)
    (stored,) = harness.rows(payment_events, event_id=succeeded.event_id)
    assert stored["raw"] == succeeded.body
    assert stored["http_headers"]["stripe-signature"] == "t=1"
    assert (stored["outcome"], stored["settlement_id"]) == ("settled", payment.charge_settlement)
    assert stored["trace_id"] and stored["processed_at"] is not None
    (attempt,) = harness.rows(settlement_attempts, settlement_id=payment.charge_settlement)
    assert (attempt["outcome"], attempt["response_status"]) == ("settled", 201)
    assert attempt["request"]["idempotency_key"] == payment.charge_settlement
    actions = [
        a["action"] for a in harness.rows(settlement_audit, settlement_id=payment.charge_settlement)
    ]
    assert actions == ["state_changed", "settlement_requested", "settled"]


def test_payment_failed_records_the_reason_and_books_nothing(harness: Harness) -> None:
    payment = PaymentFactory()
    outcome = harness.handle(record(payment.payment_failed()))
    assert outcome.status == "done"
    row = harness.settlement(payment.charge_settlement)
    assert (row["state"], row["reason"]) == ("failed", "generic_decline")
    assert harness.ledger(payment.charge_settlement) == []
    # The customer retries with another card: failed is not terminal for a PaymentIntent.
    harness.handle(record(payment.succeeded()))
    assert harness.settlement(payment.charge_settlement)["state"] == "settled"
    # A late failure for an already settled payment moves nothing backwards.
    late = harness.handle(record(payment.payment_failed()))
    assert late.status == "skipped"
    assert harness.settlement(payment.charge_settlement)["state"] == "settled"
    assert len(harness.ledger(payment.charge_settlement)) == 1


def test_cumulative_refunds_book_each_step_and_a_late_total_nothing(harness: Harness) -> None:
    payment = PaymentFactory(amount=1000)
    harness.handle(record(payment.succeeded()))
    first, second, late = payment.refunded(300), payment.refunded(500), payment.refunded(300)
    for event in (first, second, late):
        harness.handle(record(event))
    steps = {
        payment.refund_settlement(300): 300,
        payment.refund_settlement(500): 200,
    }
    for sid, amount in steps.items():
        row = harness.settlement(sid)
        (entry,) = harness.ledger(sid)
        assert (row["state"], row["amount"], row["kind"]) == ("settled", amount, "refund")
        assert (entry["amount"], entry["kind"]) == (amount, "refund")
    (late_row,) = harness.rows(payment_events, event_id=late.event_id)
    assert late_row["outcome"] == "ignored"
    dispute = payment.dispute(700)
    assert (harness.handle(record(dispute))).status == "done"
    (entry,) = harness.ledger(payment.dispute_settlement)
    assert (entry["amount"], entry["kind"]) == (700, "dispute")


def test_large_payment_waits_then_a_person_approves(harness: Harness) -> None:
    consumer, since = _trigger_consumer(harness.runtime.settings)
    payment = PaymentFactory(amount=THRESHOLD + 5)
    succeeded = payment.succeeded()
    assert (harness.handle(record(succeeded))).status == "done"
    row = harness.settlement(payment.charge_settlement)
    assert row["state"] == "pending_approval"
    assert harness.ledger(payment.charge_settlement) == []
    # A redelivered succeeded (new event id, as Stripe retries with) does not re-ask.
    assert (harness.handle(record(payment.succeeded()))).status == "skipped"

    trigger = _find_trigger(consumer, since, f"large_payment:{payment.charge_settlement}")
    assert trigger["kind"] == "large_payment"
    assert trigger["details"]["amount_minor"] == str(THRESHOLD + 5)

    approved = harness.handle(command(payment, "approve"))
    assert approved.status == "done"
    row = harness.settlement(payment.charge_settlement)
    assert (row["state"], row["approval_decision"], row["approved_by"]) == (
        "settled",
        "approve",
        "ops@example.com",
    )
    assert row["approved_at"] is not None
    # The same approval again, and a duplicate succeeded: nothing more is booked.
    assert (harness.handle(command(payment, "approve"))).status == "skipped"
    assert (harness.handle(record(payment.succeeded()))).status == "skipped"
    assert len(harness.ledger(payment.charge_settlement)) == 1
    (event_row,) = harness.rows(payment_events, event_id=succeeded.event_id)
    assert event_row["outcome"] == "settled"


def test_large_payment_rejected_by_a_person_fails_for_good(harness: Harness) -> None:
    payment = PaymentFactory(amount=THRESHOLD * 3)
    harness.handle(record(payment.succeeded()))
    assert (harness.handle(command(payment, "reject", "cfo"))).status == "done"
    row = harness.settlement(payment.charge_settlement)
    assert (row["state"], row["reason"], row["approval_decision"]) == (
        "failed",
        "rejected by cfo",
        "reject",
    )
    assert (harness.handle(record(payment.succeeded()))).status == "skipped"
    assert (harness.handle(command(payment, "approve"))).status == "skipped"
    assert harness.ledger(payment.charge_settlement) == []


def test_finance_refusal_is_a_business_outcome_with_the_reason(harness: Harness) -> None:
    payment = PaymentFactory(prefix="pi_reject")  # the sandbox freezes these accounts (402)
    outcome = harness.process(record(payment.succeeded()))
    assert isinstance(outcome, Outcome) and outcome.status == "rejected"
    row = harness.settlement(payment.charge_settlement)
    assert (row["state"], row["reason"]) == ("failed", "account_frozen")
    (attempt,) = harness.rows(settlement_attempts, settlement_id=payment.charge_settlement)
    assert (attempt["outcome"], attempt["response_status"]) == ("rejected", 402)
    assert "account_frozen" in attempt["response_body"]


def test_finance_5xx_goes_to_a_retry_tier_then_settles(harness: Harness) -> None:
    payment = PaymentFactory(amount=777)
    event = record(payment.succeeded())
    harness.fault(status=503, count=1)
    hop = harness.process(event)
    assert isinstance(hop, Hop) and not hop.dead and hop.tier == 0
    assert harness.settlement(payment.charge_settlement)["state"] == "pending"
    # The tier consumer runs the same record again once it is due.
    assert (harness.handle(event)).status == "done"
    assert harness.settlement(payment.charge_settlement)["state"] == "settled"
    attempts = harness.rows(settlement_attempts, settlement_id=payment.charge_settlement)
    assert [(a["outcome"], a["response_status"]) for a in attempts] == [
        ("retry", 503),
        ("settled", 201),
    ]
    assert len(harness.ledger(payment.charge_settlement)) == 1


def test_timeout_after_finance_booked_is_retried_into_the_same_entry(
    harness: Harness,
) -> None:
    payment = PaymentFactory(amount=555)
    event = record(payment.succeeded())
    harness.booked_unheard(event)
    assert len(harness.ledger(payment.charge_settlement)) == 1
    assert (harness.handle(event)).status == "done"
    (entry,) = harness.ledger(payment.charge_settlement)
    row = harness.settlement(payment.charge_settlement)
    assert row["finance_reference"] == entry["reference"]
    attempts = harness.rows(settlement_attempts, settlement_id=payment.charge_settlement)
    assert [a["outcome"] for a in attempts] == ["retry", "settled"]


def test_undecodable_event_goes_to_the_dead_letter_topic(harness: Harness) -> None:
    broken = RoadRecord(STRIPE_EVENTS.name, 0, next(OFFSETS), None, b"pi_x", b"{not json", [])
    hop = harness.process(broken)
    assert isinstance(hop, Hop) and hop.dead


def _trigger_consumer(settings: Settings) -> tuple[Consumer, dict[int, int]]:
    consumer = Consumer(consumer_config(settings.kafka, f"t-pay-{uuid4().hex[:8]}"))
    since: dict[int, int] = {}
    for partition in range(NOTIFICATION_TRIGGERS.partitions):
        _, high = consumer.get_watermark_offsets(
            TopicPartition(NOTIFICATION_TRIGGERS.name, partition), timeout=10
        )
        since[partition] = high
    return consumer, since


def _find_trigger(consumer: Consumer, since: dict[int, int], dedup_key: str) -> dict[str, Any]:
    serde = AvroSerde(schema_store(), NOTIFICATION_TRIGGERS.value_schema)
    consumer.assign([TopicPartition(NOTIFICATION_TRIGGERS.name, p, o) for p, o in since.items()])
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() or message.value() is None:
                continue
            trigger = serde.decode(message.value())  # type: ignore[arg-type]
            if trigger.get("dedup_key") == dedup_key:
                return trigger
    finally:
        consumer.close()
    pytest.fail(f"no trigger {dedup_key}")
