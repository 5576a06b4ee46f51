"""PostgreSQL's binary COPY format, the field types ``warehouse.events`` has.

https://www.postgresql.org/docs/15/sql-copy.html#id-1.9.3.55.9.4: a signature, then per
row a 16-bit field count and per field a 32-bit length (-1: null) and the value in the
type's binary ("send") form, then a -1 trailer. Nothing is escaped — text goes as its UTF-8
bytes, integers and timestamps as big-endian integers — so a row costs a few ``struct``
calls in Python and PostgreSQL parses no numbers or dates. A ``jsonb`` value is a version
byte (1) and the JSON text: PostgreSQL still parses and checks it, and refuses the row
(with its row number, see :mod:`sinks.aggregation.warehouse`) when it is not JSON.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
NULL = struct.pack(">i", -1)
# timestamptz is microseconds since 2000-01-01 UTC; Avro's timestamp-millis counts from 1970.
PG_EPOCH_MS = 946_684_800_000
TEXT_OID = 25
JSONB_VERSION = b"\x01"

_LENGTH = struct.Struct(">i").pack
_INT4 = struct.Struct(">ii").pack
_INT8 = struct.Struct(">iq").pack
_ARRAY_HEAD = struct.Struct(">iiiiii").pack
_EMPTY_TEXT_ARRAY = struct.pack(">iiii", 12, 0, 0, TEXT_OID)


def row_head(fields: int) -> bytes:
    return struct.pack(">h", fields)


def text(value: str | None) -> bytes:
    if value is None:
        return NULL
    data = value.encode()
    return _LENGTH(len(data)) + data


def jsonb(value: str | None) -> bytes:
    if value is None:
        return NULL
    data = value.encode()
    return _LENGTH(len(data) + 1) + JSONB_VERSION + data


def int4(value: int | None) -> bytes:
    return NULL if value is None else _INT4(4, value)


def int8(value: int | None) -> bytes:
    return NULL if value is None else _INT8(8, value)


def timestamptz_ms(millis: int | None) -> bytes:
    """A timestamp given as milliseconds since the Unix epoch."""
    return NULL if millis is None else _INT8(8, (millis - PG_EPOCH_MS) * 1000)


def text_array(values: Sequence[str] | None) -> bytes:
    """A one-dimensional ``text[]`` (empty when ``values`` is empty or None)."""
    if not values:
        return _EMPTY_TEXT_ARRAY
    items = b"".join(text(value) for value in values)
    # ndim 1, no nulls, element type, then the dimension: length and lower bound 1.
    head = _ARRAY_HEAD(20 + len(items), 1, 0, TEXT_OID, len(values), 1)
    return head + items


@dataclass(frozen=True)
class CopyRows:
    """A batch of rows as one buffer: ``data`` the rows back to back, ``ends[i]`` where row
    ``i`` ends in it. One ``bytes`` per batch, not per row (the native transcoder writes
    them so), and any run of rows is one slice (a COPY after a refused row)."""

    data: bytes
    ends: Sequence[int]

    @classmethod
    def of(cls, rows: Iterable[bytes]) -> CopyRows:
        ends, at = [], 0
        parts = list(rows)
        for row in parts:
            at += len(row)
            ends.append(at)
        return cls(b"".join(parts), ends)

    def __len__(self) -> int:
        return len(self.ends)

    def copy_data(self, start: int = 0, stop: int | None = None) -> bytes:
        """Rows ``start``..``stop`` (exclusive) as a whole COPY stream: header, rows, trailer."""
        stop = len(self.ends) if stop is None else stop
        begin = self.ends[start - 1] if start > 0 else 0
        end = self.ends[stop - 1] if stop > 0 else 0
        if begin == 0 and end == len(self.data):
            return HEADER + self.data + TRAILER
        return HEADER + self.data[begin:end] + TRAILER
