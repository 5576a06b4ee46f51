"""One Kafka record as the road sees it, independent of Faust and confluent-kafka types.

Pure logic reads records (a pipeline's handler takes one), so this module imports no Kafka
client: a confluent ``Message`` is only an annotation here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streams.road.headers import FailureHistory

if TYPE_CHECKING:
    from confluent_kafka import Message

# confluent_kafka.TIMESTAMP_NOT_AVAILABLE (a unit test keeps the two equal).
TIMESTAMP_NOT_AVAILABLE = 0

HeaderValue = str | bytes | None
RawHeaders = Iterable[tuple[str, HeaderValue]] | Mapping[str, HeaderValue] | None


def _header_list(raw: RawHeaders) -> list[tuple[str, bytes]]:
    pairs = raw.items() if isinstance(raw, Mapping) else (raw or ())
    # Kafka clients hand over (str, bytes) pairs: those pass as they are (a dozen per record).
    return [
        (name, value)
        if type(name) is str and type(value) is bytes
        else (str(name), _as_bytes(value) or b"")
        for name, value in pairs
    ]


@dataclass(frozen=True)
class RoadRecord:
    """The coordinates, raw bytes and headers of one record; the key and value are never
    decoded here, so a record that cannot be decoded still travels the road intact."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @classmethod
    def from_faust(cls, event: Any) -> RoadRecord:
        """From a Faust ``EventT`` (``stream.events()``) of a topic with raw key/value types.

        Typed as ``Any`` because Faust's ``EventT`` is an abstract type without annotations
        mypy can follow; only ``event.message`` is read.
        """
        message = event.message
        timestamp = message.timestamp
        return cls(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            timestamp_ms=int(timestamp * 1000) if timestamp else None,
            key=_as_bytes(message.key),
            value=_as_bytes(message.value),
            headers=_header_list(message.headers),
        )

    @classmethod
    def from_confluent(cls, message: Message) -> RoadRecord:
        kind, timestamp = message.timestamp()
        return cls(
            topic=message.topic() or "",
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            timestamp_ms=timestamp if kind != TIMESTAMP_NOT_AVAILABLE else None,
            key=_as_bytes(message.key()),
            value=_as_bytes(message.value()),
            headers=_header_list(message.headers()),
        )

    @property
    def history(self) -> FailureHistory:
        return FailureHistory.from_headers(self.headers)

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name`` (Kafka allows repeats; the last one wins)."""
        found: bytes | None = None
        for header_name, value in self.headers:
            if header_name == name:
                found = value
        return found

    @property
    def coordinates(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"

    def log_fields(self, pipeline: str) -> dict[str, object]:
        """Where this record is, for a structured log line of ``pipeline``."""
        return {
            "pipeline": pipeline,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
        }


def _as_bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    # A Faust topic declared with a codec hands over decoded objects; the road only carries
    # bytes, so such a topic is a wiring mistake worth failing loudly on.
    raise TypeError(f"the road needs raw bytes, got {type(value).__name__}; use raw topics")
