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

Then each partition's records of a poll go to that partition's lane
(:mod:`streams.partition_lanes`): in order within the partition, the partitions concurrently,
and the next poll is taken while they are in flight (the lanes bound how many records wait):

- a topic read by **one** source endpoint (the usual case): its records are delivered here,
  through the delivery pipeline on the road (:mod:`streams.integration.topic_delivery`: no
  second Kafka hop), one road batch (``road.batch_size``) after the other — a poll takes up
  to :data:`POLL_BATCHES` of them, since librdkafka hands its fetches over one partition at a
  time and a poll of one batch would mostly be one partition, nothing overlapping;
- a topic read by **several**: each record is forwarded onto ``integration.events``, a copy
  per endpoint (produced at once, awaited once per partition), where the delivery pipeline's
  agent reads them (that module says why these keep the hop).

The loop commits what the lanes finished before each poll (one commit for all partitions), a
partition's offset only past records whose delivery and every hand-off (a forwarded copy, a
failed record's retry tier or dead letter) is durable; a revoked partition's lane finishes
and is committed in ``on_revoke``, while still a member.

Errors are contained per partition. A delivered record that fails goes the road's way (its
retry tiers, then the dead letter, with its history). A record that cannot be forwarded, or a
run the road could not route, for a reason that may pass (Kafka unavailable, anything
unforeseen) stays uncommitted: its partition is paused and retried after a backoff
(:mod:`streams.integration.source_holds`), and every other topic and partition keeps
flowing. A copy refused for good (a :class:`~synapseops.errors.FatalError`) goes to
``integration-delivery.dlq`` with its routing headers and the reason, like any poison record,
and its partition moves on. The reader is a supervised task (``streams/supervision.py``) on
the one consumer loop of :mod:`streams.consumer`: ``run`` until ``stop``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from functools import partial

import sqlalchemy
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from streams.consumer import ConsumerLoop
from streams.integration.source_config import reserved_topics
from streams.integration.source_holds import Holds
from streams.integration.topic_delivery import TopicDelivery
from streams.integration.topic_sources import (
    TopicSource,
    dead_letter_headers,
    forwarded_headers,
    topic_sources,
)
from streams.partition_lanes import PartitionLanes
from streams.road.record import RoadRecord
from streams.source_metrics import MisconfiguredSources
from synapseops.errors import FatalError, SynapseOpsError
from synapseops.kafka import AsyncProducer, Outgoing, consumer_config
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import INTEGRATION_DELIVERY, INTEGRATION_EVENTS, platform_registry

log = get_logger(__name__)

REFRESH_S = 10.0
POLL_S = 0.5
# Road batches one poll may take: enough that a poll spans partitions.
POLL_BATCHES = 4
# How long a poll may wait while lanes are busy: their finished offsets are committed after it.
BUSY_POLL_S = 0.05


Partition = tuple[str, int]


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
            # Prefetch about a poll's worth per partition (librdkafka's default is 100,000
            # records): a partition paused while its lane is full (_pace) drops what was
            # fetched behind it, and fetches it again on resume.
            consumer_config(
                settings.kafka,
                self.group_id,
                **{"queued.min.messages": settings.road.batch_size * POLL_BATCHES},
            ),
            name="kafka-source",
            # A poll takes several partitions' fetches (librdkafka hands them over one
            # partition at a time), which then go concurrently; each partition's run is cut
            # into the road's batches (:meth:`_deliver_run`).
            batch_size=settings.road.batch_size * POLL_BATCHES,
        )
        self.chunk = settings.road.batch_size
        # Each partition's runs go on while the next poll is taken (streams/partition_lanes.py):
        # a few polls' worth in all, a poll's worth per partition (_pace).
        self.lanes = PartitionLanes(limit=self.batch_size * 3)
        self.reserved = reserved_topics(settings)
        registry = platform_registry(settings.retry.delays)
        self.dlq_topic = registry.pipelines[INTEGRATION_DELIVERY].dlq_topic
        self.holds = Holds()
        self._polls = 0  # polls that brought records (a run knows its poll: source_holds.py)
        self._busy: set[Partition] = set()  # paused while their lanes are full (_pace)
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
                self.holds.clear()
                self._busy.clear()
                if fresh:
                    await self.subscribe(sorted(fresh))
                    log.info("kafka sources subscribed", extra={"topics": sorted(fresh)})
            self._sources = fresh
        if self.consumer is not None:
            await self._commit_finished(self.consumer)
            await self.call(self._pace, self.consumer)

    def _pace(self, consumer: Consumer) -> None:
        """On the consumer's thread, before a poll: the holds (pause what is newly held,
        resume what is due), then the lanes. librdkafka serves a poll from one partition's
        fetched records while it has any, so a poll would bring the partition already in
        flight again and again, one lane busy and the others idle: a partition with a poll's
        worth in its lane is paused until it is through (the fetch then goes on from the
        record after the last one taken), and the polls bring the others."""
        self.holds.apply(consumer, self._polls)
        for where in list(self._busy):
            if self.lanes.records_of(where) < self.batch_size:
                self._busy.discard(where)
                if not self.holds.holding(where):
                    self._flip(consumer.resume, where)
        for where in self.lanes.partitions():
            if where not in self._busy and self.lanes.records_of(where) >= self.batch_size:
                self._busy.add(where)
                self._flip(consumer.pause, where)

    def _flip(
        self, pause_or_resume: Callable[[list[TopicPartition]], None], where: Partition
    ) -> None:
        try:
            pause_or_resume([TopicPartition(*where)])
        except KafkaException as exc:  # a partition just revoked: its next owner reads it
            log.debug("pause/resume refused", extra={"partition": where, "error": str(exc)})

    def poll_timeout(self) -> float:
        return BUSY_POLL_S if self.lanes.busy else POLL_S

    async def on_messages(self, consumer: Consumer, messages: list[Message]) -> None:
        runs: dict[Partition, list[RoadRecord]] = {}
        for message in messages:
            record = RoadRecord.from_confluent(message)
            runs.setdefault((record.topic, record.partition), []).append(record)
        # Partitions are independent (order is kept within one): each run goes to its
        # partition's lane, so one partition's slow target does not hold up the others, and
        # the next poll is taken while these are in flight.
        sources = self._sources
        self._polls += 1
        for where, records in runs.items():
            run = partial(self._forward_run, records, sources, self._polls)
            self.lanes.submit(where, len(records), run)
        await self._commit_finished(consumer)
        await self.lanes.room()

    async def _commit_finished(self, consumer: Consumer) -> None:
        """Commit what the lanes finished, on the consumer's thread. A commit lost to a
        rebalance only means the records are read again (their event ids are stable:
        absorbed downstream)."""
        done = self.lanes.finished()
        if done:
            await self.call(self.commit, consumer, _offsets(done))

    async def close_consumer(self) -> None:
        # What is in flight finishes (or is abandoned after the lanes' grace) and is committed
        # while still a member; then the consumer leaves.
        consumer = self.consumer
        if consumer is not None:
            await asyncio.shield(self.lanes.drain())
            await self._commit_finished(consumer)
        await super().close_consumer()

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
        self.holds.drop((tp.topic, tp.partition) for tp in partitions)
        self._busy.difference_update((tp.topic, tp.partition) for tp in partitions)
        try:
            consumer.resume([TopicPartition(tp.topic, tp.partition) for tp in partitions])
        except KafkaException as exc:
            log.debug("resume on assign refused", extra={"error": str(exc)})

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Still a member: the revoked partitions' lanes finish (up to their grace) and what
        # they finished is committed here, so their next owner starts after it.
        done = self.lanes.settle([(tp.topic, tp.partition) for tp in partitions])
        if done:
            self.commit(consumer, _offsets(done))
        self.holds.drop((tp.topic, tp.partition) for tp in partitions)

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The group moved on without us: nothing of these may be committed any more.
        self.lanes.abandon([(tp.topic, tp.partition) for tp in partitions])
        self.holds.drop((tp.topic, tp.partition) for tp in partitions)

    async def _forward_run(
        self,
        records: list[RoadRecord],
        sources: Mapping[str, list[TopicSource]],
        poll: int,
    ) -> int | None:
        """Forward one partition's records (all produced at once, awaited once); the offset
        its partition may be committed to, ``None`` if not past any. The first record that
        could not be forwarded holds back its partition, and only its own (module docstring).
        """
        where = (records[0].topic, records[0].partition)
        if self.holds.blocks(records, poll):
            return None  # fetched before the pause took effect; read again once resumed
        targets = sources.get(records[0].topic, [])
        endpoints = [source.endpoint for source in targets]
        if self.direct is not None and len(targets) == 1:
            return await self._deliver_run(records, targets[0], endpoints)
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
                self.holds.hold(record, exc, endpoints)
                return upto
            upto = record.offset + 1
        self.holds.release(where)
        return upto

    async def _deliver_run(
        self,
        records: list[RoadRecord],
        source: TopicSource,
        endpoints: list[str],
    ) -> int | None:
        """One partition's records delivered here (:mod:`streams.integration.topic_delivery`),
        a road batch after the other: committable past each batch the road returned; a batch
        it raised for holds the partition from its first record (the ones before stay done)."""
        assert self.direct is not None
        upto = None
        for start in range(0, len(records), self.chunk):
            batch = records[start : start + self.chunk]
            try:
                await self.direct.deliver(batch, source)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.holds.hold(batch[0], exc, endpoints)
                return upto
            upto = batch[-1].offset + 1
        self.holds.release((records[0].topic, records[0].partition))
        return upto

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


def _offsets(done: Mapping[Partition, int]) -> list[TopicPartition]:
    return [TopicPartition(topic, partition, upto) for (topic, partition), upto in done.items()]
