"""AvroSerde: Confluent wire format out, resolved records in, Undecodable for bad bytes."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime
from typing import Any

import pytest
from fastavro import schemaless_writer

from schemas import CANONICAL_EVENT, NOTIFICATION_TRIGGER
from schemas.serde import AvroSerde
from schemas.store import LocalSchemaStore
from synapseops.errors import SchemaInvalid, Undecodable

STORE = LocalSchemaStore()
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
WHEN = datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)


def _trigger(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": "dead_letter",
        "pipeline": "payment-settlement",
        "subject_id": "dl_0192abc",
        "summary": "settlement of pi_123 dead-lettered after 3 retries",
        "details": {"error_class": "TargetUnavailable", "attempt": "4"},
        "occurred_at": WHEN,
        "trace_id": TRACE,
        "severity": "critical",
        "dedup_key": "dl_0192abc",
    }
    record.update(overrides)
    return record


def test_wire_format_is_magic_byte_then_big_endian_id_then_body() -> None:
    serde = AvroSerde(STORE, NOTIFICATION_TRIGGER)
    data = serde.encode(_trigger())
    latest_id, _ = STORE.latest(NOTIFICATION_TRIGGER)
    assert data[0] == 0
    assert struct.unpack(">I", data[1:5])[0] == latest_id
    assert serde.decode(data) == _trigger()


def test_canonical_event_round_trip_keeps_attribute_types() -> None:
    serde = AvroSerde(STORE, CANONICAL_EVENT)
    record = {
        "id": "evt_1",
        "source": "github",
        "specversion": "1.0",
        "type": "push",
        "time": WHEN,
        "subject": "octo/hello",
        "source_type": "api_polling",
        "ingested_at": WHEN,
        "actor_id": None,
        # 2**60 is above 2**53: it must come back as the same int, not a float.
        "attributes": {
            "forced": False,
            "size": 2**60,
            "ratio": 0.5,
            "ref": "refs/tags/v1",
            "x": None,
        },
        "trace_id": TRACE,
        "tags": ["deletion"],
        "raw_ref": "synapseops.events.inbound/3/1200",
        "body": None,
    }
    decoded = serde.decode(serde.encode(record))
    assert decoded == record
    assert type(decoded["attributes"]["forced"]) is bool
    assert type(decoded["attributes"]["size"]) is int


def test_data_written_with_v1_decodes_into_the_newest_shape() -> None:
    v1_id, v1 = STORE.versions(NOTIFICATION_TRIGGER)[0]
    body = io.BytesIO()
    body.write(struct.pack(">BI", 0, v1_id))
    old = _trigger()
    del old["severity"], old["dedup_key"]
    schemaless_writer(body, v1, old)
    decoded = AvroSerde(STORE, NOTIFICATION_TRIGGER).decode(body.getvalue())
    assert decoded == old | {"severity": "warning", "dedup_key": None}


def test_encode_refuses_unknown_and_missing_fields() -> None:
    serde = AvroSerde(STORE, NOTIFICATION_TRIGGER)
    with pytest.raises(SchemaInvalid, match="notification_trigger"):
        serde.encode(_trigger(colour="red"))
    incomplete = _trigger()
    del incomplete["summary"]
    with pytest.raises(SchemaInvalid):
        serde.encode(incomplete)
    with pytest.raises(SchemaInvalid):
        serde.encode(_trigger(occurred_at="yesterday"))


def test_fields_with_defaults_may_be_left_out() -> None:
    serde = AvroSerde(STORE, NOTIFICATION_TRIGGER)
    record = _trigger()
    del record["severity"], record["dedup_key"], record["details"]
    decoded = serde.decode(serde.encode(record))
    assert decoded["severity"] == "warning" and decoded["details"] == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "shorter than the 5-byte wire header"),
        (b"\x00\x00\x00", "shorter than the 5-byte wire header"),
        (b'{"kind": "dead_letter"}', "magic byte is 123"),
        (b"\x01" + struct.pack(">I", 1) + b"\x00", "magic byte is 1"),
        (b"\x00" + struct.pack(">I", 2_000_000_000) + b"\x02a", "unknown schema id 2000000000"),
    ],
)
def test_bad_headers_are_undecodable(data: bytes, message: str) -> None:
    with pytest.raises(Undecodable, match=message):
        AvroSerde(STORE, NOTIFICATION_TRIGGER).decode(data)


def test_every_truncation_of_a_body_is_undecodable() -> None:
    serde = AvroSerde(STORE, NOTIFICATION_TRIGGER)
    data = serde.encode(_trigger())
    for cut in range(5, len(data)):
        with pytest.raises(Undecodable):
            serde.decode(data[:cut])


def test_trailing_bytes_are_undecodable() -> None:
    serde = AvroSerde(STORE, NOTIFICATION_TRIGGER)
    with pytest.raises(Undecodable, match="left after the record"):
        serde.decode(serde.encode(_trigger()) + b"\x00\x00")


def test_a_record_of_another_subject_is_undecodable() -> None:
    event_id, _ = STORE.latest(CANONICAL_EVENT)
    data = AvroSerde(STORE, NOTIFICATION_TRIGGER).encode(_trigger())
    forged = data[:1] + struct.pack(">I", event_id) + data[5:]
    with pytest.raises(Undecodable, match="notification_trigger"):
        AvroSerde(STORE, NOTIFICATION_TRIGGER).decode(forged)
