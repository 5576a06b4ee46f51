"""The API's two publishers stamp what a record is and answer what Kafka said (no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import HTTPException

from api.publish import Command, publish_command, publish_event
from synapseops import headers as kh
from synapseops.errors import KafkaRejected, KafkaUnavailable
from topics.registry import (
    INBOUND_EVENT,
    INBOUND_EVENTS,
    INTEGRATION_COMMANDS,
    INTEGRATION_RERUN,
    SETTLEMENT_COMMAND,
    SETTLEMENT_COMMANDS,
)


class Producer:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.sent: list[tuple[str, list[tuple[str, bytes]]]] = []

    async def send(self, topic: str, value: bytes, *, key: bytes, headers: Any) -> tuple[int, int]:
        if self.error is not None:
            raise self.error
        self.sent.append((topic, list(headers)))
        return (2, 40)


def _event(producer: Producer, headers: list[tuple[str, bytes]]) -> tuple[int, int]:
    return asyncio.run(
        publish_event(
            producer,  # type: ignore[arg-type]
            INBOUND_EVENTS.name,
            b"{}",
            key=b"k",
            headers=headers,
            label="github",
            log_fields={},
        )
    )


def _command(producer: Producer, kind: str = SETTLEMENT_COMMAND) -> Any:
    command = Command(
        topic=SETTLEMENT_COMMANDS.name,
        kind=kind,
        name="settlement.approve",
        key=b"pi_1",
        value=b"{}",
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    return asyncio.run(publish_command(producer, command))  # type: ignore[arg-type]


def test_an_ingress_event_carries_its_topics_kind_whatever_the_sender_claimed() -> None:
    producer = Producer()
    forged = [(kh.EVENT_ID, b"e1"), (kh.MESSAGE_KIND, SETTLEMENT_COMMAND.encode())]
    assert _event(producer, forged) == (2, 40)
    [(topic, headers)] = producer.sent
    assert topic == INBOUND_EVENTS.name
    assert kh.message_kind(headers) == INBOUND_EVENT
    assert [name for name, _ in headers].count(kh.MESSAGE_KIND) == 1


def test_a_command_carries_its_own_kind_and_ingress_like_headers() -> None:
    producer = Producer()
    published = _command(producer)
    [(topic, headers)] = producer.sent
    found = kh.to_map(headers)
    assert topic == SETTLEMENT_COMMANDS.name == published.topic
    assert found[kh.MESSAGE_KIND] == SETTLEMENT_COMMAND
    assert found[kh.EVENT_TYPE] == "settlement.approve"
    assert found[kh.SOURCE] == "api" and found[kh.EVENT_ID] == published.command_id
    assert (published.partition, published.offset) == (2, 40)
    assert INTEGRATION_RERUN in INTEGRATION_COMMANDS.kinds


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (KafkaUnavailable("broker away"), 503),
        (KafkaRejected("Message size too large", code="MSG_SIZE_TOO_LARGE"), 413),
        (KafkaRejected("Unknown topic", code="UNKNOWN_TOPIC_OR_PART"), 503),
    ],
)
def test_a_command_kafka_did_not_take_is_answered_with_a_status(
    error: BaseException, status: int
) -> None:
    with pytest.raises(HTTPException) as raised:
        _command(Producer(error))
    assert raised.value.status_code == status


def test_an_event_too_large_for_kafka_is_413_not_an_endless_503() -> None:
    with pytest.raises(HTTPException) as raised:
        _event(Producer(KafkaRejected("too large", code="MSG_SIZE_TOO_LARGE")), [])
    assert raised.value.status_code == 413
    # A plain outage still reaches the route, which answers 503 in its own body shape.
    with pytest.raises(KafkaUnavailable):
        _event(Producer(KafkaUnavailable("away")), [])
