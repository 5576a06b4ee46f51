"""Canonical records decoded for the warehouse: timestamps left as the longs on the wire.

:class:`WireTimes` is an :class:`~schemas.AvroSerde` (same wire checks, same errors, same
resolution of v1/v2 data into the newest schema) whose schemas have their ``logicalType``
dropped: ``time`` and ``ingested_at`` come out as milliseconds since the epoch, not
``datetime`` objects. The loader writes PostgreSQL's binary COPY, whose timestamps are
integers too, so building a ``datetime`` per field only to take it apart again would be
the loader's largest cost after the decode itself.
"""

from __future__ import annotations

import threading
from typing import Any

from schemas import AvroSerde
from schemas.store import ParsedSchema, SchemaStore, parse

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
