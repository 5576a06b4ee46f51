"""The dead-letter consumer: every ``<pipeline>.dlq`` topic into the ``dead_letters`` table.

For each batch of records (one poll's worth), in this order (an outbox, so a crash anywhere
loses nothing and doubles nothing):

1. insert its rows in one transaction ``ON CONFLICT DO NOTHING`` (DLQ coordinates, failure);
2. for each row whose trigger is still owed (a new row, or one whose trigger a crash
   interrupted), publish a ``dead_letter`` notification trigger — all at once — and await
   their ``acks=all`` deliveries;
3. set ``trigger_published_at`` of those rows (one statement);
4. only then commit the batch's offsets (one commit).

A redelivered record (or a second copy of the same failure) therefore finds its row and, at
most, publishes a trigger it still owes (the trigger's ``dedup_key`` lets the notification
service drop a repeat).

The store never stops on a record. A retryable error (database or Kafka down, registry
unreachable) rewinds the record's partition to it and tries again after a backoff, while
``poll`` keeps the group membership. Anything else about the record is permanent and the
partition moves on: a row that cannot be built or that PostgreSQL refuses is stored as
:func:`~sinks.dead_letters.store.minimal_row` (raw bytes, headers, the reason); a trigger that
cannot be encoded (schema subject missing, record not fitting the schema) leaves the row
with the reason in ``store_error`` and the outbox flag unset.

The consumer is the one consumer loop of :mod:`streams.consumer`, run as a supervised task
(``run`` until ``stop``; see ``streams/supervision.py``): its blocking calls run on its own
thread, database calls and trigger encoding (a registry lookup may block) in the default
executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy
from confluent_kafka import Consumer, Message, TopicPartition

from sinks.dead_letters.store import (
    DeadLetterRepository,
    DeadRecord,
    StoredDeadLetter,
    minimal_row,
    to_row,
    trigger_record,
)
from streams.consumer import ConsumerLoop
from streams.supervision import failure_reason
from streams.triggers import TriggerPublisher
from synapseops import headers as h
from synapseops.errors import RetryableError, SchemaInvalid
from synapseops.kafka import AsyncProducer, consumer_config
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import NOTIFICATION_TRIGGERS, PipelineSpec, platform_registry

log = get_logger(__name__)

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0


class DeadLetterStore(ConsumerLoop):
    """Consumes every pipeline's dead-letter topic into ``dead_letters``: a supervised unit
    (``run`` until ``stop``), or ``start``/``stop`` on a task of its own.

    ``pipelines`` defaults to the platform registry's; tests pass their own. ``group_id``
    defaults to ``<worker group>.dead-letters``.
    """

    def __init__(
        self,
        settings: Settings,
        engine: sqlalchemy.Engine,
        producer: AsyncProducer,
        *,
        pipelines: Mapping[str, PipelineSpec] | None = None,
        group_id: str | None = None,
        trigger_topic: str = NOTIFICATION_TRIGGERS.name,
    ) -> None:
        if pipelines is None:
            pipelines = platform_registry(settings.retry.delays).pipelines
        self.settings = settings
        self.repository = DeadLetterRepository(engine)
        self.producer = producer
        self.trigger_topic = trigger_topic
        self.group_id = group_id or f"{settings.worker.group_id}.dead-letters"
        config = consumer_config(
            settings.kafka, self.group_id, **{"client.id": "synapseops-dead-letters"}
        )
        super().__init__(config, name="dlq-consumer", batch_size=settings.road.batch_size)
        self._pipeline_of = {spec.dlq_topic: name for name, spec in pipelines.items()}
        self._triggers = TriggerPublisher(producer, settings, topic=trigger_topic)
        self._backoff = BACKOFF_INITIAL_S
        # Records taken from the DLQ topics (stored or found stored) and committed; ``stored``
        # counts the rows this instance created.
        self.handled = 0
        self.stored = 0

    @property
    def topics(self) -> list[str]:
        return sorted(self._pipeline_of)

    # ---- lifecycle: a supervised unit (run/stop), or start/stop of its own ------------

    async def start(self) -> None:
        """Run :meth:`run` as a task of its own (tests; the worker supervises ``run``)."""
        self.start_task()

    def subscription(self) -> Sequence[str]:
        return self.topics

    async def on_start(self) -> None:
        await super().on_start()
        log.info("dead-letter store started", extra={"topics": self.topics})

    async def on_stopped(self) -> None:
        log.info(
            "dead-letter store stopped", extra={"handled": self.handled, "stored": self.stored}
        )

    async def on_messages(self, consumer: Consumer, messages: list[Message]) -> None:
        records = [self._record(message) for message in messages]
        try:
            await self.handle_many(records)
            # One commit for the batch. A commit lost to a rebalance: the new owner reads the
            # records again and finds the rows (and the flags) already there.
            await self.call(self.commit, consumer, _next_offsets(records))
            self.handled += len(records)
            self._backoff = BACKOFF_INITIAL_S
        except RetryableError as exc:
            log.warning(
                "dead letters not stored yet; will retry",
                extra=records[0].log_fields()
                | {"batch": len(records), "error": failure_reason(exc)},
            )
            # Read them again on the next poll; no partition moves past its first record.
            for (topic, partition), offset in _first_offsets(records).items():
                await self.call(self.rewind, consumer, topic, partition, offset)
            await self.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    def _record(self, message: Message) -> DeadRecord:
        topic = message.topic() or ""
        _, timestamp = message.timestamp()
        try:
            raw_headers: Any = message.headers() or []
        except (UnicodeDecodeError, ValueError) as exc:
            # A header name that is not UTF-8 cannot even be read; the record is still kept.
            log.warning("dead record headers unreadable", extra={"topic": topic, "error": str(exc)})
            raw_headers = [("synapseops-store-note", f"headers unreadable: {exc}".encode())]
        pairs = raw_headers.items() if isinstance(raw_headers, Mapping) else raw_headers
        return DeadRecord(
            pipeline=self._pipeline_of.get(topic, topic.removesuffix(".dlq")),
            topic=topic,
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            key=_as_bytes(message.key()),
            value=_as_bytes(message.value()),
            headers=tuple((str(name), _as_bytes(value)) for name, value in pairs),
            timestamp_ms=timestamp if timestamp and timestamp > 0 else None,
        )

    async def handle(self, record: DeadRecord) -> int:
        """Store one dead record and publish its trigger if owed; the row's id.

        Raises a retryable :mod:`synapseops.errors` type when the database or Kafka did not
        take it; calling again with the same record is always safe. Anything permanent about
        the record is stored with it instead of raised (see the module doc).
        """
        row, stored = await self._store(record)
        if stored.created:
            self.stored += 1
            log.info("dead letter stored", extra={**record.log_fields(), "id": stored.id})
        if stored.trigger_pending:
            await self._publish_trigger(record, stored.id, row)
        return stored.id

    async def handle_many(self, records: Sequence[DeadRecord]) -> list[int]:
        """:meth:`handle` for a batch: its rows in one transaction, the triggers owed sent
        together, their flags set in one statement; the rows' ids, in order.

        A batch of one, and a batch PostgreSQL refuses a row of (the transaction wrote
        nothing), go record by record through :meth:`handle`, where a refused row is stored
        minimally by itself. Raises what :meth:`handle` raises.
        """
        if len(records) == 1:
            return [await self.handle(records[0])]
        rows = [self._row(record) for record in records]
        try:
            stored = await asyncio.to_thread(self.repository.store_many, rows)
        except SchemaInvalid:
            return [await self.handle(record) for record in records]
        owed: dict[int, tuple[DeadRecord, dict[str, Any]]] = {}
        for record, row, found in zip(records, rows, stored, strict=True):
            if found.created:
                self.stored += 1
                log.info("dead letter stored", extra={**record.log_fields(), "id": found.id})
            if found.trigger_pending:
                owed.setdefault(found.id, (record, row))  # two copies of a failure: one trigger
        sent = await asyncio.gather(
            *(self._send_trigger(record, row_id, row) for row_id, (record, row) in owed.items()),
            return_exceptions=True,
        )
        published = [row_id for row_id, ok in zip(owed, sent, strict=True) if ok is True]
        await asyncio.to_thread(self.repository.mark_triggers_published, published)
        for failure in sent:
            if isinstance(failure, BaseException):
                raise failure
        return [found.id for found in stored]

    def _row(self, record: DeadRecord) -> dict[str, Any]:
        try:
            return to_row(record)
        except Exception as exc:
            return self._minimal(record, exc)

    def _minimal(self, record: DeadRecord, exc: Exception) -> dict[str, Any]:
        # Unreadable times, numbers PostgreSQL will not hold, data it refuses: keep what came
        # (the bytes and headers) and why, and let the partition move on.
        reason = failure_reason(exc)
        log.warning("dead letter stored minimally", extra={**record.log_fields(), "reason": reason})
        return minimal_row(record, reason)

    async def _store(self, record: DeadRecord) -> tuple[dict[str, Any], StoredDeadLetter]:
        try:
            row = to_row(record)
            return row, await asyncio.to_thread(self.repository.store, row)
        except RetryableError:
            raise
        except Exception as exc:
            row = self._minimal(record, exc)
            return row, await asyncio.to_thread(self.repository.store, row)

    async def _publish_trigger(self, record: DeadRecord, row_id: int, row: dict[str, Any]) -> None:
        if await self._send_trigger(record, row_id, row):
            await asyncio.to_thread(self.repository.mark_trigger_published, row_id)

    async def _send_trigger(self, record: DeadRecord, row_id: int, row: dict[str, Any]) -> bool:
        """Publish the row's trigger; ``False`` when it cannot be encoded (noted on the row)."""
        try:
            # Off the loop: encoding may ask the schema registry.
            value = await self._triggers.encode_off_loop(trigger_record(row_id, row))
        except RetryableError:
            raise
        except Exception as exc:
            # Subject missing, a record the schema refuses: no retry makes it encodable.
            reason = f"trigger not published: {failure_reason(exc)}"
            log.error(
                "dead-letter trigger not published", extra={**record.log_fields(), "reason": reason}
            )
            await asyncio.to_thread(self.repository.note_store_error, row_id, reason)
            return False
        # The trigger continues the dead record's trace, so a notification links to its input.
        traceparent = h.to_map(record.headers).get(h.TRACEPARENT)
        await self._triggers.send(value, key=record.pipeline.encode(), traceparent=traceparent)
        return True


def _next_offsets(records: Sequence[DeadRecord]) -> list[TopicPartition]:
    """The offset after the last record of each partition of ``records``."""
    last: dict[tuple[str, int], int] = {}
    for record in records:
        last[(record.topic, record.partition)] = record.offset + 1
    return [TopicPartition(topic, partition, offset) for (topic, partition), offset in last.items()]


def _first_offsets(records: Sequence[DeadRecord]) -> dict[tuple[str, int], int]:
    first: dict[tuple[str, int], int] = {}
    for record in records:
        first.setdefault((record.topic, record.partition), record.offset)
    return first


def _as_bytes(value: str | bytes | None) -> bytes | None:
    # The consumer has no deserializer, so these are bytes; the stubs also allow str.
    return value.encode() if isinstance(value, str) else value
