"""One ingress-header codec: what every producer writes, every pipeline reads back the same way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.event_log.rows import to_row
from streams.integration.delivery import source_event
from streams.payments.events import decode, parse
from streams.payments.pipeline import event_record
from streams.road.record import RoadRecord
from synapseops import headers as kh
from synapseops.errors import SchemaInvalid
from tests.fixtures import SAMPLES

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TEXT = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30)


@given(
    event_id=TEXT,
    source=TEXT,
    event_type=st.one_of(st.none(), TEXT),
    connector=st.one_of(st.none(), TEXT),
    endpoint=st.one_of(st.none(), TEXT),
)
def test_what_ingress_writes_the_codec_reads_back(
    event_id: str,
    source: str,
    event_type: str | None,
    connector: str | None,
    endpoint: str | None,
) -> None:
    written = kh.ingress_headers(
        event_id=event_id,
        source=source,
        event_type=event_type,
        received_at="2026-01-02T03:04:05.678Z",
        http_headers={"Authorization": "Bearer x", "X-Y": "z"},
        traceparent=TRACE,
        connector=connector,
        endpoint=endpoint,
    )
    read = kh.IngressHeaders.read(written)
    assert (read.event_id, read.source, read.event_type) == (event_id, source, event_type)
    assert (read.connector, read.endpoint, read.traceparent) == (connector, endpoint, TRACE)
    assert read.content_type == "application/json"
    assert read.http_headers() == {"x-y": "z"}  # credentials never travel
    assert read.received_at(None) == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_received_at_falls_back_to_the_record_timestamp_then_refuses() -> None:
    bare = kh.IngressHeaders.read([(kh.RECEIVED_AT, b"not a time")])
    assert bare.received_at(1_700_000_000_000) == datetime.fromtimestamp(1_700_000_000, UTC)
    with pytest.raises(SchemaInvalid):
        bare.received_at(None)
    with pytest.raises(SchemaInvalid):
        bare.received_at(2**63 - 1)  # past year 9999: no time at all


def test_every_pipeline_reads_the_same_headers_the_same_way() -> None:
    """The event log, the payment gateway and the delivery read one record alike (they once
    had fallbacks of their own: the gateway took *now* for a record without a time)."""
    body = (SAMPLES / "stripe" / "events" / "payment_intent.succeeded.json").read_bytes()
    headers = kh.ingress_headers(
        event_id="evt_1",
        source="stripe",
        event_type="payment_intent.succeeded",
        http_headers={"Stripe-Signature": "t=1,v1=x", "Cookie": "secret"},
        traceparent=TRACE,
        connector="shop",
        endpoint="orders/create",
    )
    record = RoadRecord("t", 0, 7, 1_700_000_000_000, b"pi_1", body, headers)
    logged = to_row(record.key, record.value, record.headers, "t", 0, 7, record.timestamp_ms)
    paid = event_record(record, decode(body), parse(body))
    delivered = source_event(record)
    assert logged.received_at == paid.received_at == datetime.fromtimestamp(1_700_000_000, UTC)
    assert logged.traceparent == paid.traceparent == delivered.traceparent == TRACE
    assert logged.headers[kh.HTTP_HEADERS] == paid.http_headers == {"stripe-signature": "t=1,v1=x"}
    assert logged.event_type == paid.event_type == delivered.event_type

    timeless = RoadRecord("t", 0, 7, None, b"pi_1", body, headers)
    with pytest.raises(SchemaInvalid):
        event_record(timeless, decode(body), parse(body))
    with pytest.raises(SchemaInvalid):
        to_row(timeless.key, timeless.value, timeless.headers, "t", 0, 7, None)
