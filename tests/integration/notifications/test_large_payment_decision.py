"""A large payment's approval: the inbox and the settlement's own API are one decision.

Both services' handlers run in this process on the records Kafka really carries: the payment
gateway settles a large Stripe payment into ``pending_approval`` and publishes its
``large_payment`` trigger; the notification pipeline takes that trigger off the topic and
asks in #approvals; an approver answers through ``/api/v1/approvals`` (uvicorn) or through
``/api/v1/settlements/{id}/approve``; the command on ``payments.settlement.commands`` is handed
to both pipelines. The finance ledger (the sandbox's, real HTTP) books the payment once,
and the inbox shows the one decision, whichever door it came through.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr

from api.main import create_app
from api.server import serving_in_thread
from sandbox.harness import SandboxServer
from sinks.principals.store import create_token
from streams.payments.pipeline import PaymentGateway, build_gateway
from streams.road import Outcome, Pipeline, RoadRecord, process
from synapseops.kafka import consumer_config
from synapseops.principals import Role
from synapseops.settings import ApiSettings, DatabaseSettings, PaymentSettings
from tests.integration.databases import fresh_database
from tests.integration.notifications.harness import Harness, build, settings_for
from tests.integration.payments.factory import PaymentFactory
from topics.admin import apply_topics
from topics.registry import (
    NOTIFICATION_TRIGGERS,
    PAYMENT_SETTLEMENT,
    SETTLEMENT_COMMANDS,
    STRIPE_EVENTS,
)

pytestmark = pytest.mark.integration
THRESHOLD = 100_000
TOKEN = f"itest-{uuid.uuid4().hex}"


@dataclass
class Stack:
    notify: Harness
    gateway: PaymentGateway
    payments: Pipeline
    api: str
    approver: dict[str, str]

    def stripe(self, payment: PaymentFactory) -> None:
        event = payment.succeeded()
        record = RoadRecord(
            STRIPE_EVENTS.name, 0, 0, None, event.key.encode(), event.body, event.headers()
        )
        result = self.notify.run(process(self.payments, record, self.notify.runtime.router))
        assert isinstance(result, Outcome) and result.status == "done", result

    def to_both(self, message: Any) -> tuple[Outcome, Outcome]:
        """The command record, as each pipeline's consumer gets it from the topic."""
        record = RoadRecord(
            SETTLEMENT_COMMANDS.name,
            message.partition(),
            message.offset(),
            None,
            message.key(),
            message.value(),
            [(k, v) for k, v in message.headers() or []],
        )
        router = self.notify.runtime.router
        paid = self.notify.run(process(self.payments, record, router))
        told = self.notify.handle(record)
        assert isinstance(paid, Outcome) and isinstance(told, Outcome), (paid, told)
        return paid, told

    def ledger(self, sid: str) -> list[dict[str, Any]]:
        url = f"{self.notify.sandbox.url}/_sandbox/finance/ledger"
        return [e for e in httpx.get(url, timeout=10).json()["entries"] if e["key"] == sid]

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{self.api}{path}", json=body or {}, headers=self.approver, timeout=30)

    def get(self, path: str) -> Any:
        return httpx.get(f"{self.api}{path}", headers=self.approver, timeout=30).json()


@pytest.fixture
def stack(database_url: str, sandbox: SandboxServer, kafka_bootstrap: str) -> Iterator[Stack]:
    with fresh_database(database_url, "t_notify_pay") as url:
        base = settings_for(kafka_bootstrap, sandbox)
        settings = base.model_copy(
            update={
                "payments": PaymentSettings(
                    finance_url=f"{sandbox.url}/finance", approval_thresholds={"USD": THRESHOLD}
                ),
                "database": DatabaseSettings(url=SecretStr(url)),
                "api": ApiSettings(token=SecretStr(TOKEN)),
            }
        )
        apply_topics(settings)
        notify = build(settings, url, sandbox)
        gateway = build_gateway(settings, notify.runtime)
        payments = Pipeline.declared(PAYMENT_SETTLEMENT, gateway.handlers, settings)
        notify.slack_channel("approvals", "#approvals")
        notify.workflow(
            "large payments",
            "large_payment",
            [
                {"type": "wait_for_approval", "channel": "approvals"},
                {
                    "type": "notify",
                    "channel": "approvals",
                    "title": "{{ approval.decision }} by {{ approval.by }}",
                },
            ],
        )
        _, minted = create_token(notify.db, name="ana", roles=[Role.APPROVER], created_by="t")
        approver = {"Authorization": f"Bearer {minted.token}"}
        with serving_in_thread(create_app(settings)) as served:
            yield Stack(notify, gateway, payments, f"{served}/api/v1", approver)
        notify.run(gateway.finance.aclose())
        notify.db.dispose()


def ends(settings: Any, topic: str, partitions: int) -> Consumer:
    consumer = Consumer(consumer_config(settings.kafka, f"t-{uuid.uuid4().hex[:8]}"))
    assigned = []
    for partition in range(partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        assigned.append(TopicPartition(topic, partition, high))
    consumer.assign(assigned)
    return consumer


def next_message(consumer: Consumer, wanted: bytes) -> Any:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        message = consumer.poll(0.3)
        if message is not None and not message.error() and message.key() == wanted:
            return message
    pytest.fail(f"nothing keyed {wanted!r} arrived")


def ask_for(stack: Stack, payment: PaymentFactory) -> dict[str, Any]:
    """The payment waits; its trigger, from the topic, asks in the inbox."""
    settings = stack.notify.settings
    triggers = ends(settings, NOTIFICATION_TRIGGERS.name, NOTIFICATION_TRIGGERS.partitions)
    stack.stripe(payment)
    message = next_message(triggers, payment.pi.encode())
    triggers.close()
    record = stack.notify.record(message.value())
    assert isinstance(stack.notify.handle(record), Outcome)
    (pending,) = stack.get("/approvals?state=pending")["items"]
    assert pending["settlement_id"] == payment.charge_settlement
    return dict(pending)


def test_approved_in_the_inbox_books_once_and_answers_the_settlement(stack: Stack) -> None:
    payment = PaymentFactory(amount=THRESHOLD * 2)
    approval = ask_for(stack, payment)
    commands = ends(stack.notify.settings, SETTLEMENT_COMMANDS.name, SETTLEMENT_COMMANDS.partitions)
    accepted = stack.post(f"/approvals/{approval['id']}/approve", {"reason": "known customer"})
    assert accepted.status_code == 202, accepted.text
    message = next_message(commands, payment.pi.encode())
    paid, told = stack.to_both(message)
    assert (paid.status, told.status) == ("done", "done")
    assert len(stack.ledger(payment.charge_settlement)) == 1
    settlement = stack.get(f"/settlements/{payment.charge_settlement}")
    assert (settlement["state"], settlement["approval"]["actor"]) == ("settled", "token:ana")
    # The other door is closed now, and the same command again changes nothing anywhere.
    assert stack.post(f"/settlements/{payment.charge_settlement}/approve").status_code == 409
    assert stack.post(f"/approvals/{approval['id']}/reject").status_code == 409
    again = stack.to_both(message)
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert len(stack.ledger(payment.charge_settlement)) == 1
    assert stack.notify.slack("#approvals")[-1]["text"].startswith("approved by token:ana")
    commands.close()


def test_rejected_through_the_settlement_api_answers_the_inbox(stack: Stack) -> None:
    payment = PaymentFactory(amount=THRESHOLD * 3)
    approval = ask_for(stack, payment)
    commands = ends(stack.notify.settings, SETTLEMENT_COMMANDS.name, SETTLEMENT_COMMANDS.partitions)
    body = {"reason": "looks like fraud"}
    assert stack.post(f"/settlements/{payment.charge_settlement}/reject", body).status_code == 202
    # Meanwhile someone approves in the inbox: published too, but second on the partition.
    assert stack.post(f"/approvals/{approval['id']}/approve").status_code == 202
    first = next_message(commands, payment.pi.encode())
    second = next_message(commands, payment.pi.encode())
    assert [o.status for o in stack.to_both(first)] == ["done", "done"]
    assert [o.status for o in stack.to_both(second)] == ["skipped", "skipped"]
    assert stack.ledger(payment.charge_settlement) == []
    answered = stack.get(f"/approvals/{approval['id']}")
    assert (answered["state"], answered["answered_by"]) == ("rejected", "token:ana")
    assert answered["reason"] == "looks like fraud"
    assert stack.get(f"/settlements/{payment.charge_settlement}")["state"] == "failed"
    assert stack.notify.slack("#approvals")[-1]["text"].startswith("rejected by token:ana")
    commands.close()
