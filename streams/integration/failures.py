"""``integration_failure`` triggers: a source event whose delivery failed for good.

A fatal answer (a mapping rule broken, the target's 4xx, a refused address) dead-letters the
record at once; before the answer goes back to the road, one trigger per such record is
published through :mod:`streams.triggers` (``dedup_key`` of the record's coordinates, so a
redelivery notifies once). A trigger Kafka does not take turns that record's answer into the
retryable :class:`~synapseops.errors.KafkaUnavailable`: it comes back from a tier and is
announced then. Retryable failures that exhaust the tiers are announced by the dead-letter
store's generic ``dead_letter`` trigger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from schemas.models import INTEGRATION_FAILURE, SUMMARY_MAX_CHARS, NotificationTrigger
from streams.road import Outcome, RoadRecord
from streams.triggers import TriggerPublisher
from synapseops import headers as h
from synapseops.errors import FatalError, KafkaUnavailable
from synapseops.ids import trace_id_of
from topics.registry import INTEGRATION_DELIVERY

Answer = Outcome | BaseException


def failure_trigger(record: RoadRecord, error: BaseException) -> NotificationTrigger:
    ingress = h.IngressHeaders.read(record.headers)
    where = f"{record.topic}/{record.partition}/{record.offset}"
    subject = ingress.event_id or where
    summary = f"integration event {subject} failed for good: {type(error).__name__}: {error}"
    details = {"record": where, "error_class": type(error).__name__, "error": str(error)[:500]}
    for name, value in (("connector", ingress.connector), ("endpoint", ingress.endpoint)):
        if value:
            details[name] = value
    return NotificationTrigger(
        kind=INTEGRATION_FAILURE,
        pipeline=INTEGRATION_DELIVERY,
        subject_id=subject,
        summary=summary[:SUMMARY_MAX_CHARS],
        details=details,
        occurred_at=datetime.now(UTC),
        trace_id=trace_id_of(ingress.traceparent) or "0" * 32,
        severity="warning",
        dedup_key=f"integration_failure:{subject}",
    )


async def announce(
    publisher: TriggerPublisher, records: Sequence[RoadRecord], answers: list[Answer]
) -> list[Answer]:
    """``answers`` with every fatal one announced (or made retryable if it could not be)."""
    fatal = [i for i, answer in enumerate(answers) if isinstance(answer, FatalError)]

    async def one(index: int) -> None:
        record = records[index]
        trigger = failure_trigger(record, answers[index])  # type: ignore[arg-type]
        traceparent = h.IngressHeaders.read(record.headers).traceparent
        await publisher.publish(trigger, key=(record.key or b""), traceparent=traceparent)

    sent = await asyncio.gather(*(one(i) for i in fatal), return_exceptions=True)
    for index, failure in zip(fatal, sent, strict=True):
        if isinstance(failure, BaseException):
            answers[index] = KafkaUnavailable(
                f"integration_failure trigger not published: {failure}"
            )
    return answers
