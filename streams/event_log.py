"""The event-log pipeline: every accepted inbound event, stored once in ``inbound_events``.

Topology apart from logic: :func:`to_row` is the work, pure and typed (Kafka record in,
:class:`InboundEventRow` out, or a :class:`~synapseops.errors.FatalError` saying why the record
can never be stored); :class:`EventLog` writes the row; :func:`pipelines` declares the pipeline
to the reliability road, which owns retries (database down → retry tiers) and dead letters
(undecodable body, missing headers → the dead-letter topic, then the ``dead_letters`` table).

Duplicates are absorbed by ``UNIQUE (source, event_id)``; a redelivered record after a crash
is therefore harmless.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy

from sinks.db import TableSink
from sinks.tables import inbound_events
from streams.road import Outcome, Pipeline, RoadRecord
from synapseops import headers as h
from synapseops.errors import SchemaInvalid, Undecodable
from synapseops.ids import trace_id_of
from topics.registry import EVENT_LOG, INBOUND_EVENT

if TYPE_CHECKING:
    from streams.bootstrap import Runtime

HeaderPairs = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None


@dataclass(frozen=True)
class InboundEventRow:
    """A row of ``inbound_events`` (``id`` and ``stored_at`` are the database's)."""

    event_id: str
    source: str
    entity_key: str
    event_type: str | None
    trace_id: str | None
    traceparent: str | None
    topic: str
    partition: int
    offset: int
    payload: Any
    headers: dict[str, Any]
    received_at: datetime

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def to_row(
    key: bytes | None,
    value: bytes | None,
    headers: HeaderPairs,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None = None,
) -> InboundEventRow:
    """Decode one inbound record into its ``inbound_events`` row.

    Raises :class:`Undecodable` for a body that is not UTF-8 JSON (or holds what PostgreSQL
    ``jsonb`` cannot store: ``\\u0000``, NaN, infinities) and :class:`SchemaInvalid` when the
    headers lack the event id or source. An empty body is stored with ``payload`` NULL.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    header_map = {name: _clean(text) for name, text in h.to_map(pairs).items()}
    event_id = header_map.get(h.EVENT_ID, "").strip()
    source = header_map.get(h.SOURCE, "").strip()
    if not event_id:
        raise SchemaInvalid(f"header {h.EVENT_ID} is missing or empty")
    if not source:
        raise SchemaInvalid(f"header {h.SOURCE} is missing or empty")
    traceparent = header_map.get(h.TRACEPARENT) or None
    return InboundEventRow(
        event_id=event_id,
        source=source,
        # An event about no particular entity is its own entity.
        entity_key=_clean(key.decode("utf-8", "replace")) if key else event_id,
        event_type=header_map.get(h.EVENT_TYPE) or None,
        trace_id=trace_id_of(traceparent),
        traceparent=traceparent,
        topic=topic,
        partition=partition,
        offset=offset,
        payload=decode_body(value),
        headers=_stored_headers(header_map),
        received_at=_received_at(header_map.get(h.RECEIVED_AT), timestamp_ms),
    )


def decode_body(value: bytes | None) -> Any:
    """The body as JSON; ``None`` for an empty body. Raises :class:`Undecodable`."""
    if not value:
        return None
    try:
        text = value.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Undecodable(f"body is not UTF-8 (byte {exc.start})") from exc
    try:
        payload = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise Undecodable(f"body is not JSON: {exc.msg} at line {exc.lineno}") from exc
    if _holds_nul(payload):
        raise Undecodable("body holds \\u0000, which PostgreSQL jsonb cannot store")
    return payload


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise Undecodable(f"number {text[:40]} is out of range for jsonb")
    return number


def _no_constant(text: str) -> float:
    raise Undecodable(f"{text} is not JSON")


def _holds_nul(payload: Any) -> bool:
    stack = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _clean(text: str) -> str:
    # PostgreSQL text and jsonb refuse NUL; a header is metadata, so replace rather than reject.
    return text.replace("\x00", "\ufffd")


def _stored_headers(header_map: dict[str, str]) -> dict[str, Any]:
    stored: dict[str, Any] = dict(header_map)
    raw_http = header_map.get(h.HTTP_HEADERS)
    if raw_http:
        try:
            parsed = json.loads(raw_http)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            # Ingress already dropped credentials; drop them again in case another producer
            # did not (headers end up in a table many people can read).
            stored[h.HTTP_HEADERS] = {
                k: v for k, v in parsed.items() if str(k).lower() not in h.SECRET_HTTP_HEADERS
            }
    return stored


def _received_at(header: str | None, timestamp_ms: int | None) -> datetime:
    if header:
        try:
            parsed = datetime.fromisoformat(header.strip())
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if timestamp_ms is not None and timestamp_ms > 0:
        try:
            return datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        except (ValueError, OverflowError, OSError):
            # A producer may stamp any int64; past year 9999 it is no time at all.
            pass
    raise SchemaInvalid(f"no usable {h.RECEIVED_AT} header and no record timestamp")


class EventLog:
    """Writes inbound records to ``inbound_events``; the road handles every failure."""

    def __init__(self, events: TableSink) -> None:
        self.events = events

    @classmethod
    def from_engine(cls, engine: sqlalchemy.Engine) -> EventLog:
        return cls(TableSink(engine, inbound_events, conflict=("source", "event_id")))

    def store(self, record: RoadRecord) -> Outcome:
        """Decode and write one record (blocking). Raises the error tree on failure."""
        row = to_row(
            record.key,
            record.value,
            record.headers,
            record.topic,
            record.partition,
            record.offset,
            record.timestamp_ms,
        )
        if self.events.write_one(row.as_row()):
            return Outcome("done", "stored")
        return Outcome("skipped", "duplicate")

    async def handle(self, record: RoadRecord) -> Outcome:
        return await asyncio.to_thread(self.store, record)


def pipelines(runtime: Runtime) -> list[Pipeline]:
    event_log = EventLog.from_engine(runtime.engine)
    return [Pipeline.declared(EVENT_LOG, {INBOUND_EVENT: event_log.handle}, runtime.settings)]
