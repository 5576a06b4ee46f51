"""to_row and the event-log routing, on real fixture bodies, without a broker or database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from sinks.base import Sink
from streams.event_log.pipeline import EventLog
from streams.event_log.rows import to_row
from streams.road import RoadRecord
from synapseops import headers as h
from synapseops.errors import DatabaseUnavailable, SchemaInvalid, Undecodable
from tests.fixtures import SAMPLES

FIXTURES = SAMPLES
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def ingress_headers(event_id: str = "evt_1", source: str = "stripe") -> list[tuple[str, bytes]]:
    return [
        (h.EVENT_ID, event_id.encode()),
        (h.SOURCE, source.encode()),
        (h.EVENT_TYPE, b"payment_intent.succeeded"),
        (h.RECEIVED_AT, b"2026-01-02T03:04:05.678Z"),
        (h.TRACEPARENT, TRACEPARENT.encode()),
        (h.CONTENT_TYPE, b"application/json"),
        (h.HTTP_HEADERS, h.http_headers_json({"Stripe-Signature": "t=1,v1=ab", "X-Y": "z"})),
    ]


@pytest.mark.parametrize(
    "fixture",
    [
        "stripe/events/payment_intent.succeeded.json",
        "stripe/events/charge.refunded.json",
        "shopify/order.json",
        "stripe/events/payment_intent.payment_failed.json",
        "github/push.with-new-branch.json",
        "github/issues.opened.json",
        "otel/logs.json",
    ],
)
def test_to_row_keeps_real_bodies_exactly(fixture: str) -> None:
    body = (FIXTURES / fixture).read_bytes()
    row = to_row(b"pi_123", body, ingress_headers(), "synapseops.events.inbound", 3, 42)
    assert row.payload == json.loads(body)
    assert (row.topic, row.partition, row.offset) == ("synapseops.events.inbound", 3, 42)
    assert row.entity_key == "pi_123"


def test_to_row_reads_identity_and_trace_from_headers() -> None:
    body = (FIXTURES / "stripe/events/payment_intent.succeeded.json").read_bytes()
    headers = ingress_headers("evt_1FG74XB7kbjcJ8Qq22i2BPdt")
    row = to_row(b"pi_1FG742B7kbjcJ8QqGKF6qIM0", body, headers, "t", 0, 7)
    assert row.event_id == "evt_1FG74XB7kbjcJ8Qq22i2BPdt"
    assert row.source == "stripe"
    assert row.event_type == "payment_intent.succeeded"
    assert row.traceparent == TRACEPARENT
    assert row.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert row.received_at == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert row.headers[h.HTTP_HEADERS] == {"stripe-signature": "t=1,v1=ab", "x-y": "z"}
    assert row.as_row()["event_id"] == row.event_id


def test_otel_big_integers_stay_strings() -> None:
    # OTLP writes 64-bit values as strings; decoding must not turn them into floats.
    row = to_row(None, (FIXTURES / "otel/logs.json").read_bytes(), ingress_headers(), "t", 0, 0)
    text = json.dumps(row.payload)
    assert '"1544712660300000000"' in text


def test_missing_key_makes_the_event_its_own_entity() -> None:
    row = to_row(None, b"{}", ingress_headers("evt_9"), "t", 0, 0)
    assert row.entity_key == "evt_9"


def test_empty_body_is_stored_without_payload() -> None:
    assert to_row(b"k", b"", ingress_headers(), "t", 0, 0).payload is None


def test_record_timestamp_when_received_at_header_is_absent_or_bad() -> None:
    headers = [(n, v) for n, v in ingress_headers() if n != h.RECEIVED_AT]
    row = to_row(
        b"k", b"{}", headers + [(h.RECEIVED_AT, b"yesterday")], "t", 0, 0, 1_700_000_000_000
    )
    assert row.received_at == datetime.fromtimestamp(1_700_000_000, UTC)
    with pytest.raises(SchemaInvalid):
        to_row(b"k", b"{}", headers, "t", 0, 0, None)


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b'{"truncated": ',
        b"\xff\xfe\x00garbage",
        b'{"amount": NaN}',
        b'{"amount": 1e400}',
        b'{"memo": "nul \\u0000 inside"}',
    ],
)
def test_undecodable_bodies_are_fatal(body: bytes) -> None:
    with pytest.raises(Undecodable):
        to_row(b"k", body, ingress_headers(), "t", 0, 0)


@pytest.mark.parametrize("missing", [h.EVENT_ID, h.SOURCE])
def test_missing_identity_headers_are_fatal(missing: str) -> None:
    headers = [(n, v) for n, v in ingress_headers() if n != missing]
    with pytest.raises(SchemaInvalid, match=missing):
        to_row(b"k", b"{}", headers, "t", 0, 0)


def test_nul_in_headers_is_replaced_not_fatal() -> None:
    row = to_row(b"k\x00", b"{}", ingress_headers("evt_\x00x"), "t", 0, 0)
    assert "\x00" not in row.event_id and "\x00" not in row.entity_key


# ---- routing, with in-memory sinks ------------------------------------------------------


class MemorySink(Sink[Any]):
    """Absorbs duplicates on ``unique`` like the table does; can be told to fail."""

    def __init__(self, unique: Sequence[str], fail_times: int = 0) -> None:
        super().__init__()
        self.unique = tuple(unique)
        self.rows: dict[tuple[Any, ...], Any] = {}
        self.fail_times = fail_times

    def write(self, batch: Sequence[Any]) -> int:
        if self.fail_times:
            self.fail_times -= 1
            raise DatabaseUnavailable("connection refused")
        new = 0
        for row in batch:
            ident = tuple(row[c] for c in self.unique)
            if ident not in self.rows:
                self.rows[ident] = row
                new += 1
        return new


def pipeline(events_fail: int = 0) -> EventLog:
    return EventLog(MemorySink(("source", "event_id"), events_fail))  # type: ignore[arg-type]


def record(value: bytes, offset: int = 0, event_id: str = "evt_1") -> RoadRecord:
    return RoadRecord("t", 0, offset, None, b"k", value, ingress_headers(event_id))


def test_handle_stores_then_absorbs_the_duplicate() -> None:
    log = pipeline()
    assert asyncio.run(log.handle(record(b"{}", 0))).detail == "stored"
    duplicate = asyncio.run(log.handle(record(b"{}", 1)))
    assert (duplicate.status, duplicate.detail) == ("skipped", "duplicate")
    assert len(log.events.rows) == 1  # type: ignore[attr-defined]


def test_poison_raises_fatal_for_the_road_to_dead_letter() -> None:
    with pytest.raises(Undecodable):
        asyncio.run(pipeline().handle(record(b"\x00poison", 5)))


def test_database_down_raises_retryable_for_the_road() -> None:
    log = pipeline(events_fail=1)
    with pytest.raises(DatabaseUnavailable):
        asyncio.run(log.handle(record(b"{}")))
    assert asyncio.run(log.handle(record(b"{}"))).detail == "stored"
