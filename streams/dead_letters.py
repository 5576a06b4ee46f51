"""The dead-letter consumer: every ``<pipeline>.dlq`` topic into the ``dead_letters`` table.

For each record, in this order (an outbox, so a crash anywhere loses nothing and doubles
nothing):

1. insert its row ``ON CONFLICT (dlq_topic, dlq_partition, dlq_offset) DO NOTHING``;
2. if the row's trigger is still owed (a new row, or one whose trigger a crash interrupted),
   publish a ``dead_letter`` notification trigger and await its ``acks=all`` delivery;
3. set ``trigger_published_at``;
4. only then commit the record's offset.

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

The consumer is confluent-kafka's, run as a supervised task (``run`` until ``stop``; see
``streams/supervision.py``): its blocking calls run on one dedicated thread (the client is
not meant to be called from two threads at once), database calls and trigger encoding (a
registry lookup may block) in the default executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from sinks.dead_letters.store import (
    DeadLetterRepository,
    DeadRecord,
    StoredDeadLetter,
    minimal_row,
    to_row,
    trigger_record,
)
from streams.supervision import failure_reason
from streams.triggers import TriggerPublisher
from synapseops import headers as h
from synapseops.errors import RetryableError
from synapseops.kafka import AsyncProducer, consumer_config
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import NOTIFICATION_TRIGGERS, PipelineSpec, platform_registry

log = get_logger(__name__)

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
POLL_TIMEOUT_S = 0.5


class DeadLetterStore:
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
        self._pipeline_of = {spec.dlq_topic: name for name, spec in pipelines.items()}
        self._triggers = TriggerPublisher(producer, settings, topic=trigger_topic)
        self._consumer: Consumer | None = None
        self._kafka_thread: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
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
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name="dead-letter-store")

    async def stop(self, grace_s: float = 15.0) -> None:
        """Finish the record in hand, then leave the group. A record not committed by then is
        read again by whoever gets its partition, and finds its row."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace_s)
            except TimeoutError:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run(self) -> None:
        """Consume until :meth:`stop`; raises only what no record explains (a bug, a fatal
        client error), for the supervisor to report and restart."""
        self._kafka_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dlq-consumer")
        try:
            config = consumer_config(
                self.settings.kafka, self.group_id, **{"client.id": "synapseops-dead-letters"}
            )
            self._consumer = await self._on_kafka_thread(Consumer, config)
            await self._on_kafka_thread(self._consumer.subscribe, self.topics)
            log.info("dead-letter store started", extra={"topics": self.topics})
            await self._consume(self._consumer)
        finally:
            if self._consumer is not None:
                await asyncio.shield(self._on_kafka_thread(self._consumer.close))
                self._consumer = None
            self._kafka_thread.shutdown(wait=False)
            self._kafka_thread = None
            log.info(
                "dead-letter store stopped",
                extra={"handled": self.handled, "stored": self.stored},
            )

    async def _on_kafka_thread(self, fn: Any, *args: Any) -> Any:
        assert self._kafka_thread is not None, "run() first"
        return await asyncio.get_running_loop().run_in_executor(self._kafka_thread, fn, *args)

    async def _consume(self, consumer: Consumer) -> None:
        backoff = BACKOFF_INITIAL_S
        while not self._stopping.is_set():
            message: Message | None = await self._on_kafka_thread(consumer.poll, POLL_TIMEOUT_S)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                # Unknown topic (not applied yet), transient broker trouble: the client retries.
                log.warning("dead-letter consumer error", extra={"error": error.str()})
                continue
            record = self._record(message)
            try:
                await self.handle(record)
                await self._on_kafka_thread(self._commit, consumer, record)
                self.handled += 1
                backoff = BACKOFF_INITIAL_S
            except RetryableError as exc:
                log.warning(
                    "dead letter not stored yet; will retry",
                    extra={**record.log_fields(), "error": failure_reason(exc)},
                )
                # Read it again on the next poll; the partition does not move past it.
                await self._on_kafka_thread(self._rewind, consumer, record)
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, BACKOFF_MAX_S)

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

    async def _store(self, record: DeadRecord) -> tuple[dict[str, Any], StoredDeadLetter]:
        try:
            row = to_row(record)
            return row, await asyncio.to_thread(self.repository.store, row)
        except RetryableError:
            raise
        except Exception as exc:
            # Unreadable times, numbers PostgreSQL will not hold, data it refuses: keep what
            # came (the bytes and headers) and why, and let the partition move on.
            reason = failure_reason(exc)
            log.warning(
                "dead letter stored minimally", extra={**record.log_fields(), "reason": reason}
            )
            row = minimal_row(record, reason)
            return row, await asyncio.to_thread(self.repository.store, row)

    async def _publish_trigger(self, record: DeadRecord, row_id: int, row: dict[str, Any]) -> None:
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
            return
        # The trigger continues the dead record's trace, so a notification links to its input.
        traceparent = h.to_map(record.headers).get(h.TRACEPARENT)
        await self._triggers.send(value, key=record.pipeline.encode(), traceparent=traceparent)
        await asyncio.to_thread(self.repository.mark_trigger_published, row_id)

    @staticmethod
    def _commit(consumer: Consumer, record: DeadRecord) -> None:
        offsets = [TopicPartition(record.topic, record.partition, record.offset + 1)]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Lost the partition in a rebalance: its new owner reads the record again and
            # finds the row (and the flag) already there.
            log.warning(
                "dead-letter offset not committed", extra={**record.log_fields(), "error": str(exc)}
            )

    @staticmethod
    def _rewind(consumer: Consumer, record: DeadRecord) -> None:
        try:
            consumer.seek(TopicPartition(record.topic, record.partition, record.offset))
        except KafkaException as exc:
            log.warning(
                "dead-letter rewind failed", extra={**record.log_fields(), "error": str(exc)}
            )


def _as_bytes(value: str | bytes | None) -> bytes | None:
    # The consumer has no deserializer, so these are bytes; the stubs also allow str.
    return value.encode() if isinstance(value, str) else value
