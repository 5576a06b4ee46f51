"""Canonical events in bulk for loader tests and the benchmark: encoded once, produced fast."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from schemas import CANONICAL_EVENT, AvroSerde
from schemas.models import CanonicalEvent, LogBody
from schemas.store import LocalSchemaStore
from streams.aggregation.logic.common import to_nanos

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def encoded_events(source: str, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` distinct events of ``source`` as (key, wire-format value)."""
    serde = AvroSerde(LocalSchemaStore(), CANONICAL_EVENT)
    out = []
    for n in range(count):
        when = START + timedelta(milliseconds=n)
        event = CanonicalEvent(
            id=f"e{n}",
            source=source,
            type="bench.event",
            time=when,
            subject=f"entity-{n % 97}",
            source_type="stream",
            ingested_at=when + timedelta(milliseconds=40),
            attributes={"n": n, "even": n % 2 == 0},
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            body=LogBody(
                time_unix_nano=to_nanos(when),
                observed_time_unix_nano=to_nanos(when) + 40_000_000,
                severity_number=9,
                body=json.dumps({"n": n, "nested": {"tags": ["a", "b"], "ok": True}}),
                resource='{"service.name":"bench"}',
                attributes=json.dumps({"n": n, "path": "/x\ty\\z"}),
            ),
        )
        out.append((f"{source}/{event.subject}".encode(), serde.encode(event.to_record())))
    return out


def wire_record_without_body(**fields: object) -> dict[str, object]:
    """A record as :class:`~streams.aggregation.decode.WireTimes` reads data written with
    v1/v2 (no OTel body, flat attributes; times in ms), ``fields`` replacing its values."""
    return {
        "id": "e1",
        "source": "s",
        "specversion": "1.0",
        "type": "t",
        "time": 1_764_547_200_000,  # 2025-12-01T00:00:00Z
        "subject": None,
        "source_type": "stream",
        "ingested_at": 1_764_547_200_040,
        "actor_id": None,
        "attributes": {"n": 1, "ok": True},
        "trace_id": "a" * 32,
        "tags": [],
        "raw_ref": None,
        "body": None,
    } | fields


def create_topic(bootstrap: str, topic: str, partitions: int = 6) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=30)


def produce_all(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000, "acks": "all"}
    )
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key=key)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0
