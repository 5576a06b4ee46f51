"""Canonical records as binary COPY rows (no database needed; the round trip through
PostgreSQL is tests/integration/aggregation/test_warehouse_copy.py)."""

from __future__ import annotations

import struct

import pytest

from schemas import CANONICAL_EVENT
from schemas.store import LocalSchemaStore
from sinks.aggregation.copy_format import PG_EPOCH_MS, jsonb, text, text_array, timestamptz_ms
from sinks.aggregation.warehouse import COLUMNS
from streams.aggregation.columns import extra_columns
from streams.aggregation.rows import ROW_COLUMNS, encode_row
from synapseops.errors import SchemaInvalid
from tests.integration.aggregation.events import wire_record_without_body

WHEN_MS = 1_764_547_200_000  # 2025-12-01T00:00:00Z


def _fields(row: bytes) -> list[bytes | None]:
    """Split one binary COPY row into its fields (None for null)."""
    (count,) = struct.unpack_from(">h", row)
    at, out = 2, []
    for _ in range(count):
        (length,) = struct.unpack_from(">i", row, at)
        at += 4
        if length < 0:
            out.append(None)
            continue
        out.append(row[at : at + length])
        at += length
    assert at == len(row), "bytes left after the last field"
    return out


def test_the_row_is_written_in_the_table_s_column_order() -> None:
    assert ROW_COLUMNS == COLUMNS


def test_data_without_a_body_keeps_its_flat_attributes() -> None:
    fields = dict(
        zip(
            COLUMNS,
            _fields(encode_row(wire_record_without_body(), text("topic"), 2, 7)),
            strict=True,
        )
    )
    assert fields["attributes"] == b'\x01{"n":1,"ok":true}'
    assert fields["resource"] == b"\x01{}" and fields["body"] is None
    assert fields["subject"] is None and fields["topic"] == b"topic"
    assert fields["partition"] == struct.pack(">i", 2) and fields["offset"] == struct.pack(">q", 7)
    micros = (WHEN_MS - PG_EPOCH_MS) * 1000
    assert fields["time"] == struct.pack(">q", micros)


def test_field_encodings() -> None:
    assert text("ü\t") == struct.pack(">i", 3) + "ü\t".encode()
    assert jsonb(None) == struct.pack(">i", -1)
    assert timestamptz_ms(PG_EPOCH_MS) == struct.pack(">iq", 8, 0)
    array = text_array(["a", "bc"])
    assert array == struct.pack(">iiiiii", 20 + 5 + 6, 1, 0, 25, 2, 1) + text("a") + text("bc")
    assert text_array([]) == struct.pack(">iiii", 12, 0, 0, 25)


def test_fields_beyond_the_mapped_ones_become_typed_columns() -> None:
    _, v3 = LocalSchemaStore().latest(CANONICAL_EVENT)
    assert extra_columns(v3) == ()
    v4 = v3 | {
        "fields": [
            *v3["fields"],
            {"name": "region", "type": ["null", "string"], "default": None},
            {"name": "seen", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
            {"name": "labels", "type": ["null", {"type": "map", "values": "string"}]},
            {"name": "ok", "type": "boolean", "default": False},
        ]
    }
    columns = extra_columns(v4)
    assert [(c.name, c.sql_type) for c in columns] == [
        ("region", "text"),
        ("seen", "timestamptz"),
        ("labels", "jsonb"),
        ("ok", "boolean"),
    ]
    row = encode_row(
        wire_record_without_body(region="eu", labels={"a": "b"}), text("t"), 0, 0, columns
    )
    fields = _fields(row)
    assert len(fields) == len(COLUMNS) + 4
    assert fields[-4:] == [b"eu", None, b'\x01{"a":"b"}', None]
    with pytest.raises(SchemaInvalid):
        extra_columns(v3 | {"fields": [*v3["fields"], {"name": "topic", "type": "string"}]})
