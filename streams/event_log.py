"""The event-log pipeline: every accepted inbound event, stored once in ``inbound_events``.

Topology apart from logic:

- :func:`to_row` is the work, pure and typed: Kafka record in, :class:`InboundEventRow` out,
  or a :class:`~synapseops.errors.FatalError` saying why the record can never be stored.
- :class:`EventLog` routes one record to its :class:`Outcome` (``handle``) and owns what to do
  with a retryable one (``settle``). Until the retry topics arrive, a retryable error is
  retried in place with capped exponential backoff: the record is not acked until written.
  A fatal one is kept with its raw bytes in ``rejected_events``.
- :func:`attach` wires the thin agent onto a Faust app.

Duplicates are absorbed by ``UNIQUE (source, event_id)``; a redelivered record after a crash
is therefore harmless.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import faust
import sqlalchemy

from sinks.db import TableSink
from sinks.tables import inbound_events, rejected_events
from streams.health import PIPELINE_RECORDS, PIPELINE_SECONDS
from synapseops import headers as h
from synapseops.errors import SchemaInvalid, SynapseOpsError, Undecodable, classify
from synapseops.ids import trace_id_of
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import EVENT_LOG, INBOUND_EVENTS

log = get_logger(__name__)

PIPELINE = EVENT_LOG
# In-place retry while the retry topics do not exist yet: 0.5 s doubling to 30 s.
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
_RNG = random.Random()

HeaderPairs = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None


@dataclass(frozen=True)
class InboundRecord:
    """One Kafka record as the pipeline sees it (built from a Faust event, or by a test)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp_ms: int | None = None

    @classmethod
    def from_event(cls, event: faust.types.EventT[bytes]) -> InboundRecord:
        message = event.message
        raw = message.headers or ()
        pairs = tuple(raw.items()) if isinstance(raw, Mapping) else tuple(raw)
        timestamp = message.timestamp
        return cls(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            headers=pairs,
            timestamp_ms=int(timestamp * 1000) if timestamp else None,
        )

    def log_fields(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "pipeline": PIPELINE,
        }


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
        return datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    raise SchemaInvalid(f"no usable {h.RECEIVED_AT} header and no record timestamp")


class OutcomeKind(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"  # fatal: kept in rejected_events, never retried
    RETRY = "retry"  # retryable: not written yet, try again later


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    error: BaseException | None = None

    @property
    def error_class(self) -> str | None:
        return type(self.error).__name__ if self.error is not None else None


def backoff_delay(attempt: int, jitter: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before in-place attempt ``attempt + 1`` (``attempt`` ≥ 1)."""
    base = min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * 2.0 ** (attempt - 1))
    spread: float = (rng or _RNG).uniform(-jitter, jitter)
    return max(0.0, base * (1 + spread))


class EventLog:
    """Routes inbound records to ``inbound_events`` (or ``rejected_events``)."""

    def __init__(self, events: TableSink, rejections: TableSink, *, jitter: float = 0.2) -> None:
        self.events = events
        self.rejections = rejections
        self.jitter = jitter

    @classmethod
    def from_engine(cls, engine: sqlalchemy.Engine, *, jitter: float = 0.2) -> EventLog:
        return cls(
            TableSink(engine, inbound_events, conflict=("source", "event_id")),
            TableSink(
                engine, rejected_events, conflict=("pipeline", "topic", "partition", "offset")
            ),
            jitter=jitter,
        )

    def handle(self, record: InboundRecord) -> Outcome:
        """Decode, store, classify. Blocking (database I/O); never raises."""
        try:
            row = to_row(
                record.key,
                record.value,
                record.headers,
                record.topic,
                record.partition,
                record.offset,
                record.timestamp_ms,
            )
            written = self.events.write_one(row.as_row())
            return Outcome(OutcomeKind.STORED if written else OutcomeKind.DUPLICATE)
        except Exception as exc:  # classified below; nothing escapes to the agent
            if classify(exc) == "retryable":
                return Outcome(OutcomeKind.RETRY, exc)
            return self._reject(record, exc)

    def _reject(self, record: InboundRecord, error: Exception) -> Outcome:
        try:
            self.rejections.write_one(rejection_row(record, error))
        except Exception as exc:
            # The record cannot be put aside right now: keep it (retry) rather than lose it.
            return Outcome(OutcomeKind.RETRY, exc)
        return Outcome(OutcomeKind.REJECTED, error)

    async def settle(self, record: InboundRecord) -> Outcome:
        """Handle ``record`` until it has a final outcome; retryable errors are retried in place.

        The database is blocking, so each attempt runs in the loop's executor.
        """
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            outcome = await loop.run_in_executor(None, self.handle, record)
            if outcome.kind is not OutcomeKind.RETRY:
                break
            PIPELINE_RECORDS.labels(PIPELINE, OutcomeKind.RETRY.value).inc()
            delay = backoff_delay(attempt, self.jitter)
            log.warning(
                "retryable error; retrying in place",
                extra={
                    **record.log_fields(),
                    "attempt": attempt,
                    "retry_in_s": round(delay, 3),
                    "error_class": outcome.error_class,
                    "error": str(outcome.error),
                },
            )
            await asyncio.sleep(delay)
        PIPELINE_SECONDS.labels(PIPELINE).observe(time.perf_counter() - started)
        PIPELINE_RECORDS.labels(PIPELINE, outcome.kind.value).inc()
        if outcome.kind is OutcomeKind.REJECTED:
            log.error(
                "record rejected",
                extra={
                    **record.log_fields(),
                    "error_class": outcome.error_class,
                    "error": str(outcome.error),
                },
            )
        else:
            log.debug("record settled", extra={**record.log_fields(), "outcome": outcome.kind})
        return outcome


def rejection_row(record: InboundRecord, error: BaseException) -> dict[str, Any]:
    """The ``rejected_events`` row keeping ``record`` byte for byte, with why it was refused."""
    header_map = {name: _clean(text) for name, text in h.to_map(record.headers).items()}
    message = str(error) if isinstance(error, SynapseOpsError) else f"{error!r}"
    return {
        "pipeline": PIPELINE,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key,
        "value": record.value,
        "headers": header_map,
        "error_class": type(error).__name__,
        "error": _clean(message)[:4000],
    }


def attach(
    app: faust.App, settings: Settings, engine: sqlalchemy.Engine
) -> faust.types.AgentT[bytes]:
    """Wire the event-log agent onto ``app``; returns the agent."""
    topic = app.topic(INBOUND_EVENTS.name, key_serializer="raw", value_serializer="raw")
    pipeline = EventLog.from_engine(engine, jitter=settings.retry.jitter)

    @app.agent(topic, name=f"synapseops.{PIPELINE}")
    async def event_log(stream: faust.StreamT[bytes]) -> None:
        # events(), not the values: headers and coordinates travel with the event. Faust acks
        # an event when the loop asks for the next one, so a record under retry stays unacked.
        async for event in stream.events():
            await pipeline.settle(InboundRecord.from_event(event))

    return event_log
