"""Kafka-topic sources: a flow whose source endpoint is a topic gets that topic's records
forwarded onto ``integration.events`` with the headers that route them to their flows.

A source endpoint of a ``kafka`` connector names its topic in ``kafka_topic``. One consumer
(group ``<worker group>.integration-sources``) reads every such topic that has an enabled flow
and passes :func:`~streams.integration.source_config.source_topic_problem` (no regex, no
platform or internal topic: never the platform's own output); an endpoint that fails it is
skipped and logged, the others are read. Each record is produced to ``integration.events``
with its bytes and key unchanged and its own headers kept — except every platform header
(``synapseops-*``, ``traceparent``/``tracestate``), which a foreign record may not set: it
cannot forge an attempt count, a kind, an event id or trace state. The forwarder stamps its
own: the connector/endpoint headers, a trace continued from a valid foreign ``traceparent``
(as the HTTP ingress does), and the event id — the value of the endpoint's
``event_id_header`` when configured and present, else ``<topic>/<partition>/<offset>`` —
stable, so a record forwarded twice after a crash is absorbed downstream. The offset is
committed only after the forwarded copy is durable.

Errors are contained per partition: a record that cannot be forwarded for a reason that may
pass (Kafka unavailable, anything unforeseen) stays uncommitted, its partition is paused and
retried after a backoff (doubling to :data:`MAX_BACKOFF_S`), and every other topic and
partition keeps flowing. A record refused for good (a :class:`~synapseops.errors.FatalError`)
goes to ``integration-delivery.dlq`` with its routing headers and the reason, like any poison
record, and its partition moves on. The forwarder is a supervised task
(``streams/supervision.py``): ``run`` until ``stop``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.integration.metrics import SOURCE_FAILURES, MisconfiguredSources
from streams.integration.source_config import reserved_topics
from streams.integration.topic_sources import (
    TopicSource,
    dead_letter_headers,
    forwarded_headers,
    topic_sources,
)
from streams.road.record import RoadRecord
from synapseops.errors import FatalError, KafkaUnavailable, SynapseOpsError
from synapseops.kafka import AsyncProducer, consumer_config
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import INTEGRATION_DELIVERY, INTEGRATION_EVENTS, platform_registry

log = get_logger(__name__)

REFRESH_S = 10.0
POLL_S = 0.5
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 300.0


Partition = tuple[str, int]


@dataclass
class Hold:
    """A partition held back after a failed record: its offset, when to try again (``None``
    once resumed, still on probation), and the delay that was waited."""

    offset: int
    retry_at: float | None
    delay: float


class KafkaSourceForwarder:
    """Forwards the records of every Kafka-topic source onto ``integration.events``."""

    def __init__(
        self, settings: Settings, engine: sqlalchemy.Engine, producer: AsyncProducer
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.producer = producer
        self.group_id = f"{settings.worker.group_id}.integration-sources"
        self.reserved = reserved_topics(settings)
        registry = platform_registry(settings.retry.delays)
        self.dlq_topic = registry.pipelines[INTEGRATION_DELIVERY].dlq_topic
        self._stopping = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._held: dict[Partition, Hold] = {}
        self._misconfigured = MisconfiguredSources("kafka")
        self.forwarded = 0

    async def stop(self) -> None:
        self._stopping.set()

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def run(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-source")
        consumer: Consumer | None = None
        sources: dict[str, list[TopicSource]] = {}
        listed_at = -REFRESH_S
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping.is_set():
                if loop.time() - listed_at >= REFRESH_S:
                    listed_at = loop.time()
                    fresh = await self._read_sources(sources)
                    if consumer is None or sorted(fresh) != sorted(sources):
                        if consumer is not None:
                            await self._call(consumer.close)
                            consumer = None
                        self._held.clear()
                        if fresh:
                            consumer = await self._subscribe(sorted(fresh))
                    sources = fresh
                if consumer is None:
                    await self._sleep(POLL_S)
                    continue
                await self._call(self._unblock_due, consumer)
                message: Message | None = await self._call(consumer.poll, POLL_S)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.fatal():
                        raise KafkaUnavailable(f"kafka source consumer failed: {error.str()}")
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("kafka source consumer error", extra={"error": error.str()})
                    continue
                await self._forward_contained(consumer, message, sources)
        finally:
            if consumer is not None:
                await asyncio.shield(self._call(consumer.close))
            self._executor.shutdown(wait=False)
            self._executor = None

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _read_sources(
        self, known: dict[str, list[TopicSource]]
    ) -> dict[str, list[TopicSource]]:
        try:
            fresh, invalid = await asyncio.to_thread(topic_sources, self.engine, self.reserved)
        except SynapseOpsError as exc:
            log.warning("kafka sources not read", extra={"error": str(exc)})
            return known
        self._misconfigured.report(invalid)
        return fresh

    async def _subscribe(self, topics: list[str]) -> Consumer:
        config = consumer_config(self.settings.kafka, self.group_id)
        consumer: Consumer = await self._call(Consumer, config)
        await self._call(
            consumer.subscribe, topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        log.info("kafka sources subscribed", extra={"topics": topics})
        return consumer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # A partition (re)gained starts from its committed offset; no hold carries over, and
        # librdkafka may remember a pause across a revoke and a re-assign.
        consumer.assign(partitions)
        for tp in partitions:
            self._held.pop((tp.topic, tp.partition), None)
        try:
            consumer.resume([TopicPartition(tp.topic, tp.partition) for tp in partitions])
        except KafkaException as exc:
            log.debug("resume on assign refused", extra={"error": str(exc)})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._held.pop((tp.topic, tp.partition), None)

    def _unblock_due(self, consumer: Consumer) -> None:
        now = time.monotonic()
        for (topic, partition), hold in list(self._held.items()):
            if hold.retry_at is None or hold.retry_at > now:
                continue
            try:
                # Back to the record that failed (what was fetched behind it was dropped).
                consumer.seek(TopicPartition(topic, partition, hold.offset))
                consumer.resume([TopicPartition(topic, partition)])
            except KafkaException as exc:
                log.warning(
                    "kafka source partition not resumed",
                    extra={"topic": topic, "partition": partition, "error": str(exc)},
                )
                continue
            hold.retry_at = None

    async def _forward_contained(
        self, consumer: Consumer, message: Message, sources: Mapping[str, list[TopicSource]]
    ) -> None:
        """Forward one record; a failure holds back only its own partition."""
        record = RoadRecord.from_confluent(message)
        where = (record.topic, record.partition)
        held = self._held.get(where)
        if held is not None and held.retry_at is not None:
            return  # fetched before the pause took effect; read again once resumed
        try:
            try:
                await self._forward(consumer, record, sources)
            except FatalError as exc:
                await self._dead_letter(consumer, record, sources, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = min(held.delay * 2, MAX_BACKOFF_S) if held is not None else FIRST_BACKOFF_S
            self._held[where] = Hold(record.offset, time.monotonic() + delay, delay)
            await self._call(consumer.pause, [TopicPartition(record.topic, record.partition)])
            SOURCE_FAILURES.labels("kafka", "forward_failed").inc()
            log.warning(
                "kafka source record not forwarded; its partition waits and retries",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "endpoints": [s.endpoint for s in sources.get(record.topic, [])],
                    "retry_in_s": delay,
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )
            return
        self._held.pop(where, None)

    async def _forward(
        self, consumer: Consumer, record: RoadRecord, sources: Mapping[str, list[TopicSource]]
    ) -> None:
        for source in sources.get(record.topic, []):
            await self.producer.send(
                INTEGRATION_EVENTS.name,
                record.value,
                key=record.key,
                headers=forwarded_headers(record, source),
            )
        await self._commit(consumer, record)
        self.forwarded += 1

    async def _dead_letter(
        self,
        consumer: Consumer,
        record: RoadRecord,
        sources: Mapping[str, list[TopicSource]],
        exc: FatalError,
    ) -> None:
        """The record as a dead letter of the delivery pipeline (one per endpoint reading it,
        with that endpoint's routing headers, so a replay delivers it to its flows)."""
        for source in sources.get(record.topic, []):
            headers = dead_letter_headers(record, source, exc)
            await self.producer.send(self.dlq_topic, record.value, key=record.key, headers=headers)
        log.warning(
            "kafka source record refused for good; dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": f"{type(exc).__name__}: {exc}",
            },
        )
        await self._commit(consumer, record)

    async def _commit(self, consumer: Consumer, record: RoadRecord) -> None:
        offset = TopicPartition(record.topic, record.partition, record.offset + 1)
        try:
            await self._call(consumer.commit, offsets=[offset], asynchronous=False)
        except KafkaException as exc:
            # A commit lost to a rebalance only means the record is forwarded again.
            log.warning("kafka source commit failed", extra={"error": str(exc)})
