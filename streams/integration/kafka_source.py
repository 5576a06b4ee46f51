"""Kafka-topic sources: the records of a topic some flow's source endpoint names, delivered.

A source endpoint of a ``kafka`` connector names its topic in ``kafka_topic``. One consumer
(group ``<worker group>.integration-sources``) reads every such topic that has an enabled flow
and passes :func:`~streams.integration.source_config.source_topic_problem` (no regex, no
platform or internal topic: never the platform's own output); an endpoint that fails it is
skipped and logged, the others are read. A record gets the headers that route it to its flows
(:func:`~streams.integration.topic_sources.forwarded_headers`): its bytes and key unchanged, its
own headers kept — except every platform header (``synapseops-*``, ``traceparent``/
``tracestate``), which a foreign record may not set: it cannot forge an attempt count, a kind,
an event id or trace state. Ours are stamped: the connector/endpoint headers, a trace
continued from a valid foreign ``traceparent`` (as the HTTP ingress does), and the event id —
the value of the endpoint's ``event_id_header`` when configured and present, else
``<topic>/<partition>/<offset>`` — stable, so a record read twice after a crash is absorbed.

Then, per partition of a poll (the partitions concurrently):

- a topic read by **one** source endpoint (the usual case): its records are delivered here,
  through the delivery pipeline on the road (:mod:`streams.integration.topic_delivery`: no
  second Kafka hop);
- a topic read by **several**: each record is forwarded onto ``integration.events``, a copy
  per endpoint (produced at once, awaited once per partition), where the delivery pipeline's
  agent reads them (that module says why these keep the hop).

A partition's offsets are committed once for the poll, only after every delivery and every
hand-off (a forwarded copy, a failed record's retry tier or dead letter) is durable.

Errors are contained per partition. A delivered record that fails goes the road's way (its
retry tiers, then the dead letter, with its history). A record that cannot be forwarded, or a
run the road could not route, for a reason that may pass (Kafka unavailable, anything
unforeseen) stays uncommitted: its partition is paused and retried after a backoff (doubling
to :data:`MAX_BACKOFF_S`), and every other topic and partition keeps flowing. A copy refused
for good (a :class:`~synapseops.errors.FatalError`) goes to ``integration-delivery.dlq`` with
its routing headers and the reason, like any poison record, and its partition moves on. The
reader is a supervised task (``streams/supervision.py``) on the one consumer loop of
:mod:`streams.consumer`: ``run`` until ``stop``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from streams.consumer import ConsumerLoop
from streams.integration.source_config import reserved_topics
from streams.integration.topic_delivery import TopicDelivery
from streams.integration.topic_sources import (
    TopicSource,
    dead_letter_headers,
    forwarded_headers,
    topic_sources,
)
from streams.road.record import RoadRecord
from streams.source_metrics import SOURCE_FAILURES, MisconfiguredSources
from synapseops.errors import FatalError, SynapseOpsError
from synapseops.kafka import AsyncProducer, Outgoing, consumer_config
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


class KafkaSourceForwarder(ConsumerLoop):
    """Reads every Kafka-topic source: delivers its records (``direct``) or forwards them onto
    ``integration.events`` (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        engine: sqlalchemy.Engine,
        producer: AsyncProducer,
        direct: TopicDelivery | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.producer = producer
        self.direct = direct
        self.group_id = f"{settings.worker.group_id}.integration-sources"
        super().__init__(
            consumer_config(settings.kafka, self.group_id),
            name="kafka-source",
            batch_size=settings.road.batch_size,
        )
        self.reserved = reserved_topics(settings)
        registry = platform_registry(settings.retry.delays)
        self.dlq_topic = registry.pipelines[INTEGRATION_DELIVERY].dlq_topic
        self._held: dict[Partition, Hold] = {}
        self._misconfigured = MisconfiguredSources("kafka")
        self._sources: dict[str, list[TopicSource]] = {}
        self._listed_at = -REFRESH_S

    # ---- on the consumer loop (streams.consumer) ------------------------------------------

    async def before_poll(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._listed_at >= REFRESH_S:
            self._listed_at = loop.time()
            fresh = await self._read_sources(self._sources)
            if self.consumer is None or sorted(fresh) != sorted(self._sources):
                await self.close_consumer()
                self._held.clear()
                if fresh:
                    await self.subscribe(sorted(fresh))
                    log.info("kafka sources subscribed", extra={"topics": sorted(fresh)})
            self._sources = fresh
        if self.consumer is not None:
            await self.call(self._unblock_due, self.consumer)

    async def on_messages(self, consumer: Consumer, messages: list[Message]) -> None:
        runs: dict[Partition, list[RoadRecord]] = {}
        for message in messages:
            record = RoadRecord.from_confluent(message)
            runs.setdefault((record.topic, record.partition), []).append(record)
        # Partitions are independent (order is kept within one): their runs go concurrently,
        # so one partition's slow target does not hold up the others' deliveries.
        sources = self._sources
        uptos = await asyncio.gather(
            *(self._forward_run(consumer, records, sources) for records in runs.values())
        )
        offsets = [
            TopicPartition(records[0].topic, records[0].partition, upto)
            for records, upto in zip(runs.values(), uptos, strict=True)
            if upto is not None
        ]
        if offsets:
            # One commit for the batch; a commit lost to a rebalance only means the records
            # are forwarded again (their event ids are stable: absorbed downstream).
            await self.call(self.commit, consumer, offsets)

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

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # A partition (re)gained starts from its committed offset; no hold carries over, and
        # librdkafka may remember a pause across a revoke and a re-assign.
        consumer.assign(partitions)
        for tp in partitions:
            self._held.pop((tp.topic, tp.partition), None)
        try:
            consumer.resume([TopicPartition(tp.topic, tp.partition) for tp in partitions])
        except KafkaException as exc:
            log.debug("resume on assign refused", extra={"error": str(exc)})

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
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

    async def _forward_run(
        self,
        consumer: Consumer,
        records: list[RoadRecord],
        sources: Mapping[str, list[TopicSource]],
    ) -> int | None:
        """Forward one partition's records (all produced at once, awaited once); the offset
        its partition may be committed to, ``None`` if not past any. The first record that
        could not be forwarded holds back its partition, and only its own (module docstring).
        """
        where = (records[0].topic, records[0].partition)
        held = self._held.get(where)
        if held is not None and held.retry_at is not None:
            return None  # fetched before the pause took effect; read again once resumed
        targets = sources.get(records[0].topic, [])
        if self.direct is not None and len(targets) == 1:
            return await self._deliver_run(consumer, records, held, targets)
        outgoing: list[Outgoing] = []
        for record in records:
            outgoing += [
                Outgoing(INTEGRATION_EVENTS.name, record.value, record.key, headers)
                for headers in (forwarded_headers(record, source) for source in targets)
            ]
        answers = await self.producer.send_many(outgoing)
        upto = None
        for index, record in enumerate(records):
            mine = answers[index * len(targets) : (index + 1) * len(targets)]
            failures = [answer for answer in mine if isinstance(answer, BaseException)]
            try:
                if failures and not isinstance(failures[0], FatalError):
                    raise failures[0]
                if failures:
                    await self._dead_letter(record, sources, failures[0])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._hold(consumer, record, held, exc, targets)
                return upto
            upto = record.offset + 1
        self._held.pop(where, None)
        return upto

    async def _deliver_run(
        self,
        consumer: Consumer,
        records: list[RoadRecord],
        held: Hold | None,
        targets: list[TopicSource],
    ) -> int | None:
        """One partition's records delivered here (:mod:`streams.integration.topic_delivery`):
        committable past the last once the road returned, held from the first if it raised."""
        assert self.direct is not None
        try:
            await self.direct.deliver(records, targets[0])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._hold(consumer, records[0], held, exc, targets)
            return None
        self._held.pop((records[0].topic, records[0].partition), None)
        return records[-1].offset + 1

    async def _hold(
        self,
        consumer: Consumer,
        record: RoadRecord,
        held: Hold | None,
        exc: Exception,
        targets: list[TopicSource],
    ) -> None:
        delay = min(held.delay * 2, MAX_BACKOFF_S) if held is not None else FIRST_BACKOFF_S
        self._held[(record.topic, record.partition)] = Hold(
            record.offset, time.monotonic() + delay, delay
        )
        await self.call(consumer.pause, [TopicPartition(record.topic, record.partition)])
        SOURCE_FAILURES.labels("kafka", "forward_failed").inc()
        log.warning(
            "kafka source record not forwarded; its partition waits and retries",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "endpoints": [s.endpoint for s in targets],
                "retry_in_s": delay,
                "error": f"{type(exc).__name__}: {exc}",
            },
        )

    async def _dead_letter(
        self,
        record: RoadRecord,
        sources: Mapping[str, list[TopicSource]],
        exc: BaseException,
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
