"""One trigger publisher: typed triggers in, Avro out, for every producer of triggers."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from schemas.models import NotificationTrigger
from schemas.serde import AvroSerde
from schemas.store import LocalSchemaStore
from sinks.dead_letters.store import DeadRecord, to_row, trigger_record
from streams.payments.pipeline import large_payment_trigger
from streams.payments.settlement import EntryKind, Settlement, SettlementState
from streams.triggers import TriggerPublisher
from synapseops.settings import PROJECT_ROOT, Settings
from tests.unit.test_api_app import RecordingProducer
from topics.registry import NOTIFICATION_TRIGGERS

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _decoded(value: bytes) -> NotificationTrigger:
    return NotificationTrigger.from_record(
        AvroSerde(LocalSchemaStore(), NOTIFICATION_TRIGGERS.value_schema).decode(value)
    )


def test_a_trigger_goes_out_as_avro_continuing_its_cause_trace() -> None:
    settlement = Settlement(
        "stl_1", "pi_1", EntryKind.CHARGE, 2_500_000, "EUR", SettlementState.PENDING_APPROVAL
    )
    trigger = large_payment_trigger(settlement, TRACE)
    producer = RecordingProducer()
    publisher = TriggerPublisher(producer, Settings())  # type: ignore[arg-type]
    asyncio.run(publisher.publish(trigger, key=b"pi_1", traceparent=TRACE))
    [sent] = producer.sent
    assert sent["topic"] == NOTIFICATION_TRIGGERS.name and sent["key"] == b"pi_1"
    decoded = _decoded(sent["value"])
    # Avro keeps milliseconds; everything else comes back as it went.
    assert decoded.model_dump(exclude={"occurred_at"}) == trigger.model_dump(
        exclude={"occurred_at"}
    )
    assert abs((decoded.occurred_at - trigger.occurred_at).total_seconds()) < 0.001
    [(name, traceparent)] = sent["headers"]
    assert name == "traceparent" and traceparent.decode().split("-")[1] == TRACE.split("-")[1]
    assert trigger.dedup_key == "large_payment:stl_1" and trigger.kind == "large_payment"


def test_a_dead_letter_trigger_is_typed_whatever_the_failure_said() -> None:
    # An error class of 600 characters (a foreign producer's header) still makes a valid
    # trigger: the summary is cut to what the model allows, the details keep the class.
    history = [("synapseops-error-class", b"E" * 600), ("synapseops-attempt", b"3")]
    row = to_row(
        DeadRecord("payments", "payments.dlq", 1, 7, b"k", b"v", tuple(history), None),
        now=datetime(2025, 1, 1, tzinfo=UTC),
    )
    trigger = trigger_record(42, row)
    assert isinstance(trigger, NotificationTrigger)
    assert len(trigger.summary) == 500 and trigger.details["error_class"] == "E" * 600
    assert trigger.dedup_key == "dead_letter:payments.dlq:1:7"


def test_no_producer_of_triggers_bypasses_the_publisher() -> None:
    """Only streams/triggers.py names the trigger topic when producing."""
    sends = re.compile(r"\.send\(\s*(NOTIFICATION_TRIGGERS|self\.trigger_topic|TRIGGERS)")
    for package in ("streams", "sinks", "api"):
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            assert not sends.search(path.read_text()), path
