"""Canonical records decoded for the warehouse: timestamps left as the longs on the wire.

:class:`WireTimes` is an :class:`~schemas.AvroSerde` (same wire checks, same errors, same
resolution of v1/v2 data into the newest schema) whose schemas have their ``logicalType``
dropped: ``time`` and ``ingested_at`` come out as milliseconds since the epoch, not
``datetime`` objects. The loader writes PostgreSQL's binary COPY, whose timestamps are
integers too, so building a ``datetime`` per field only to take it apart again would be
the loader's largest cost after the decode itself.

Faster still, :func:`decode_path` picks the compiled transcoder
(``streams/aggregation/_transcode.pyx``: wire bytes straight to COPY rows, byte for byte
what ``WireTimes`` + :func:`~streams.aggregation.rows.encode_row` write) when it is built and
the newest schema is the one it reads (by :func:`schema_digest`); it reads only records that
schema wrote and hands every other one back to this Python path.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas import AvroSerde
from schemas.store import ParsedSchema, SchemaStore, parse

try:
    from streams.aggregation import _transcode
except ImportError:  # not built (no C compiler where it was installed): the Python path
    _transcode = None  # type: ignore[assignment]

NATIVE, PYTHON = "native", "python"

# What fastavro adds to a schema it parsed; a parsed schema is read again without them.
_PARSED_KEYS = frozenset({"__fastavro_parsed", "__named_schemas", "logicalType"})


def without_logical_types(schema: Any) -> Any:
    """``schema`` (parsed or not) with every ``logicalType`` removed: the same bytes on the
    wire, read as their underlying primitive."""
    if isinstance(schema, dict):
        return {k: without_logical_types(v) for k, v in schema.items() if k not in _PARSED_KEYS}
    if isinstance(schema, list):
        return [without_logical_types(item) for item in schema]
    return schema


class WireTimes(AvroSerde):
    """An AvroSerde whose decode reads logical types as their primitives (module doc);
    encode is unchanged."""

    def __init__(self, store: SchemaStore, subject: str) -> None:
        super().__init__(store, subject)
        self._lock = threading.Lock()
        # (writer id, newest id) -> the plain pair; ids name immutable schemas.
        self._pairs: dict[tuple[int, int], tuple[ParsedSchema, ParsedSchema | None]] = {}

    def _schemas(self, schema_id: int) -> tuple[ParsedSchema, ParsedSchema | None]:
        latest_id, _ = self.store.latest(self.subject)
        known = self._pairs.get((schema_id, latest_id))
        if known is not None:
            return known
        writer, reader = super()._schemas(schema_id)
        plain_reader = None if reader is None else parse(without_logical_types(reader))
        found = (parse(without_logical_types(writer)), plain_reader)
        with self._lock:
            self._pairs[(schema_id, latest_id)] = found
        return found


def schema_digest(schema: Any) -> str:
    """SHA-256 of a (parsed) schema without its docs and fastavro's own keys: two schemas
    with one digest write and read the same bytes the same way (logical types, defaults
    and aliases included, unlike the Parsing Canonical Form)."""

    def plain(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: plain(v) for k, v in node.items() if k != "doc" and not k.startswith("__")}
        if isinstance(node, list):
            return [plain(item) for item in node]
        return node

    return hashlib.sha256(json.dumps(plain(schema), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class DecodePath:
    """How a batch's records become rows: ``native`` reads records of writer schema
    ``schema_id`` in the compiled transcoder (the rest in Python), ``python`` reads all in
    Python; ``reason`` says why (logged when the path changes)."""

    name: str
    schema_id: int | None
    reason: str


def decode_path(store: SchemaStore, subject: str) -> DecodePath:
    latest_id, schema = store.latest(subject)
    if _transcode is None:
        return DecodePath(PYTHON, None, "the native transcoder is not built")
    if schema_digest(schema) != _transcode.SCHEMA_DIGEST:
        return DecodePath(
            PYTHON, None, f"the newest schema (id {latest_id}) is not the one it was built for"
        )
    return DecodePath(NATIVE, latest_id, f"the newest schema (id {latest_id}) is its own")


Fallback = Callable[[Any], bytes | None]


def batch_rows(
    messages: list[Any], topic: bytes, path: DecodePath, fallback: Fallback
) -> tuple[bytes, list[int], list[tuple[int, int]], int]:
    """confluent-kafka ``messages`` as COPY rows in one buffer, in order: ``(data, ends,
    coordinates, native)`` as ``_transcode.transcode_batch`` gives them. ``fallback(message)``
    is the Python path for one record: its row, or None to leave it out."""
    if path.schema_id is not None and _transcode is not None:
        return _transcode.transcode_batch(messages, topic, path.schema_id, fallback)
    rows: list[bytes] = []
    ends: list[int] = []
    coordinates: list[tuple[int, int]] = []
    at = 0
    for message in messages:
        row = fallback(message)
        if row is None:
            continue
        rows.append(row)
        at += len(row)
        ends.append(at)
        coordinates.append((message.partition() or 0, message.offset() or 0))
    return b"".join(rows), ends, coordinates, 0
