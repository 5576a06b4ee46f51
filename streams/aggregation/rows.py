"""A decoded canonical record as one ``warehouse.events`` row in binary COPY form (pure).

The record is what :class:`~streams.aggregation.decode.WireTimes` reads: the newest schema's
shape with ``time``/``ingested_at`` as milliseconds. Data written with v1/v2 of the schema
has no OTel body: its flat attributes become the row's ``attributes`` and the resource is
empty. The body's JSON parts are already JSON text in the record and go to PostgreSQL as
they are: it parses them into jsonb as it loads (and refuses a row whose text is not JSON,
which the warehouse sets aside by its row number), so nothing is parsed or dumped here.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from sinks.aggregation.copy_format import (
    NULL,
    int4,
    int8,
    jsonb,
    row_head,
    text,
    text_array,
    timestamptz_ms,
)
from streams.aggregation.columns import ExtraColumn
from streams.aggregation.logic.common import as_json
from synapseops.errors import SchemaInvalid

# The order the fields are written in: warehouse.COLUMNS (a unit test holds them equal).
ROW_COLUMNS: tuple[str, ...] = (
    "source", "id", "type", "time", "subject", "specversion", "source_type", "ingested_at",
    "actor_id", "trace_id", "tags", "raw_ref", "time_unix_nano", "observed_time_unix_nano",
    "severity_number", "severity_text", "body", "resource", "attributes", "log_trace_id",
    "log_span_id", "topic", "partition", "offset",
)  # fmt: skip
_HEAD = row_head(len(ROW_COLUMNS))
_EMPTY_OBJECT = jsonb("{}")


def encode_row(
    record: dict[str, Any],
    topic: bytes,
    partition: int,
    offset: int,
    extras: Sequence[ExtraColumn] = (),
) -> bytes:
    """The row; ``topic`` is already :func:`~sinks.aggregation.copy_format.text`-encoded
    (one topic per batch). ``extras``: the columns newer schema fields brought
    (:mod:`streams.aggregation.columns`), written after the base ones.

    :class:`SchemaInvalid` for a value its column's binary form cannot hold (a time whose
    microseconds overflow 64 bits, an ``int`` beyond 32): no model writes one, and the
    record is set aside rather than stopping the loader."""
    try:
        return _encode(record, topic, partition, offset, extras)
    except struct.error as exc:
        raise SchemaInvalid(f"a value does not fit its warehouse column: {exc}") from exc


def _encode(
    record: dict[str, Any],
    topic: bytes,
    partition: int,
    offset: int,
    extras: Sequence[ExtraColumn],
) -> bytes:
    body = record.get("body")
    if body is None:
        log = (NULL, NULL, NULL, NULL, NULL, _EMPTY_OBJECT)
        attributes = jsonb(as_json(record.get("attributes") or {}))
        trace_id = span_id = None
    else:
        log = (
            int8(body["time_unix_nano"]),
            int8(body["observed_time_unix_nano"]),
            int4(body["severity_number"]),
            text(body["severity_text"]),
            jsonb(body["body"]),
            jsonb(body["resource"]),
        )
        attributes = jsonb(body["attributes"])
        trace_id, span_id = body["trace_id"], body["span_id"]
    head = _HEAD if not extras else row_head(len(ROW_COLUMNS) + len(extras))
    return b"".join(
        (
            head,
            text(record["source"]),
            text(record["id"]),
            text(record["type"]),
            timestamptz_ms(record["time"]),
            text(record["subject"]),
            text(record["specversion"]),
            text(record["source_type"]),
            timestamptz_ms(record["ingested_at"]),
            text(record["actor_id"]),
            text(record["trace_id"]),
            text_array(record["tags"]),
            text(record["raw_ref"]),
            *log,
            attributes,
            text(trace_id),
            text(span_id),
            topic,
            int4(partition),
            int8(offset),
            *(column.encode(record.get(column.name)) for column in extras),
        )
    )
