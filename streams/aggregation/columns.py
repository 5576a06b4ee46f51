"""Columns of ``warehouse.events`` that a newer canonical schema brings: an optional field
added to the schema becomes a column without a migration and without downtime.

:func:`extra_columns` reads the newest schema: every top-level field that
:func:`~streams.aggregation.rows.encode_row` does not map already is an :class:`ExtraColumn`
with the PostgreSQL type its Avro type stands for (``null`` taken out of a union; a
``timestamp-millis`` is ``timestamptz``; a record, map or array is ``jsonb``). The loader
adds it (``ADD COLUMN IF NOT EXISTS``, nullable, no default: PostgreSQL changes only the
catalogue, no table rewrite, and waits at most ``lock_timeout`` for its lock) and appends
its value to every row it writes from then on; older data reads the field's default.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sinks.aggregation.copy_format import NULL, int4, int8, jsonb, text, timestamptz_ms
from sinks.aggregation.tables import events
from streams.aggregation.logic.common import as_json
from synapseops.errors import SchemaInvalid

# The canonical fields encode_row maps into the base columns.
MAPPED = frozenset(
    {"id", "source", "specversion", "type", "time", "subject", "source_type", "ingested_at",
     "actor_id", "attributes", "trace_id", "tags", "raw_ref", "body"}
)  # fmt: skip
# A column name the loader creates: what Avro allows for a field name, lower-cased.
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TAKEN = frozenset(column.name for column in events.columns)
_FLOAT8 = struct.Struct(">id").pack
_FLOAT4 = struct.Struct(">if").pack


def _bool(value: Any) -> bytes:
    return NULL if value is None else (b"\x00\x00\x00\x01" + (b"\x01" if value else b"\x00"))


def _float8(value: Any) -> bytes:
    return NULL if value is None else _FLOAT8(8, value)


def _float4(value: Any) -> bytes:
    return NULL if value is None else _FLOAT4(4, value)


def _bytea(value: Any) -> bytes:
    return NULL if value is None else struct.pack(">i", len(value)) + bytes(value)


def _json(value: Any) -> bytes:
    return NULL if value is None else jsonb(as_json(value))


_PRIMITIVES: dict[str, tuple[str, Callable[[Any], bytes]]] = {
    "string": ("text", text),
    "long": ("bigint", int8),
    "int": ("integer", int4),
    "boolean": ("boolean", _bool),
    "double": ("double precision", _float8),
    "float": ("real", _float4),
    "bytes": ("bytea", _bytea),
}


@dataclass(frozen=True)
class ExtraColumn:
    name: str
    sql_type: str
    encode: Callable[[Any], bytes]


def _column(name: str, avro_type: Any) -> ExtraColumn:
    if isinstance(avro_type, list):
        kinds = [kind for kind in avro_type if kind != "null"]
        avro_type = kinds[0] if len(kinds) == 1 else {"type": "union"}
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") == "timestamp-millis":
            return ExtraColumn(name, "timestamptz", timestamptz_ms)
        if avro_type.get("type") in _PRIMITIVES:
            avro_type = avro_type["type"]
    if isinstance(avro_type, str) and avro_type in _PRIMITIVES:
        sql_type, encode = _PRIMITIVES[avro_type]
        return ExtraColumn(name, sql_type, encode)
    # records, maps, arrays, unions of several kinds, enums: their JSON
    return ExtraColumn(name, "jsonb", _json)


def extra_columns(schema: dict[str, Any]) -> tuple[ExtraColumn, ...]:
    """The newest schema's fields beyond :data:`MAPPED`, in schema order.

    :class:`SchemaInvalid` for a field whose name cannot be a new column: not a plain
    lower-case identifier, or the name of a column the table has already (``topic``, …)."""
    found = []
    for field in schema.get("fields", []):
        name = str(field["name"])
        if name in MAPPED:
            continue
        if not _NAME.match(name) or name in _TAKEN:
            raise SchemaInvalid(f"canonical field {name!r} cannot be a new warehouse column")
        found.append(_column(name, field["type"]))
    return tuple(found)
