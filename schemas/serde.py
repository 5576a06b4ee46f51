"""Avro records in the Confluent wire format.

A value is ``0x00`` (magic byte), the writer schema's id as 4 bytes big-endian, then the Avro
binary body (no container header). Any consumer that speaks Confluent's format reads it, and
the id tells a reader which schema wrote the body, so a reader on a newer version resolves
old data (fields added with defaults appear with their default).
"""

from __future__ import annotations

import io
import struct
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

from schemas.store import ParsedSchema, SchemaStore
from synapseops.errors import SchemaInvalid, Undecodable

MAGIC_BYTE = 0
_HEADER = struct.Struct(">BI")


class AvroSerde:
    """Encode/decode one subject's records; writes with, and reads into, its newest schema."""

    def __init__(self, store: SchemaStore, subject: str) -> None:
        self.store = store
        self.subject = subject

    def encode(self, record: dict[str, Any]) -> bytes:
        """The record as wire-format bytes; :class:`SchemaInvalid` if it breaks the schema.

        Strict: an unknown field is an error (it would be dropped silently otherwise), a
        missing field is one unless the schema gives it a default.
        """
        schema_id, schema = self.store.latest(self.subject)
        buffer = io.BytesIO()
        buffer.write(_HEADER.pack(MAGIC_BYTE, schema_id))
        try:
            schemaless_writer(buffer, schema, record, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SchemaInvalid(
                f"record does not fit {self.subject} (schema id {schema_id}): {exc}"
            ) from exc
        return buffer.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        """The record, resolved from its writer schema into the newest one.

        :class:`Undecodable` for a bad magic byte, an unknown schema id, a truncated or
        trailing body, or a writer schema the newest one cannot read.
        """
        if len(data) < _HEADER.size:
            raise Undecodable(
                f"{self.subject}: {len(data)} bytes is shorter than the 5-byte wire header"
            )
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC_BYTE:
            raise Undecodable(
                f"{self.subject}: magic byte is {magic}, expected {MAGIC_BYTE} "
                "(not Confluent wire format)"
            )
        writer, reader = self._schemas(schema_id)
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        try:
            record = schemaless_reader(body, writer, reader)
        except SchemaResolutionError as exc:
            raise Undecodable(
                f"{self.subject}: schema id {schema_id} cannot be read as the newest schema: {exc}"
            ) from exc
        except (EOFError, StopIteration, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise Undecodable(
                f"{self.subject}: body does not decode with schema id {schema_id} "
                f"(truncated or corrupt): {exc!r}"
            ) from exc
        if body.tell() != len(data):
            raise Undecodable(
                f"{self.subject}: {len(data) - body.tell()} bytes left after the record "
                f"(schema id {schema_id} is not the schema that wrote it)"
            )
        if not isinstance(record, dict):
            raise Undecodable(f"{self.subject}: schema id {schema_id} is not a record schema")
        return record

    def _schemas(self, schema_id: int) -> tuple[ParsedSchema, ParsedSchema | None]:
        """The writer's schema and the reader's; ``None`` when the writer's is the newest (no
        resolution: fastavro would otherwise compare the two whole schemas on every call)."""
        latest_id, reader = self.store.latest(self.subject)
        writer = reader if schema_id == latest_id else self.store.get(schema_id)
        return writer, (None if schema_id == latest_id else reader)
