"""A retry tier's consumer: holds each record until it is due, then runs it through its pipeline.

One :class:`TierConsumer` per retry-tier topic, plus one for the pipeline's parking topic, each
a supervised unit inside the worker's loop, run by the one consumer loop of
:mod:`streams.consumer` (its own thread, rebalance callbacks on it, shielded close).

Holding without stalling. A consumer keeps up to ``capacity`` not-yet-due records per
partition in memory; when a partition holds that many it is paused, the rest of the consumer
keeps polling (other partitions flow, ``max.poll.interval.ms`` is never broken) with a poll
timeout that ends at the earliest due time. Due records run earliest first; a partition's
committed offset only ever moves up to its *lowest unfinished* offset, so a held record is
never committed past, and whoever reads the partition next (after a crash or a rebalance)
starts at or before it.

* **Tiers** hold up to ``TIER_CAPACITY`` records (``TIER_MAX_BYTES``) per partition: records
  of one tier share a delay, so within a partition due times follow the offsets and the held
  ones come due in offset order; a burst of failures comes due as a burst and runs as one
  batch. Holding only the head (as the tiers once did) paused the partition behind every
  record: each record behind it was fetched again after its predecessor ran, one fetch round
  per record, and a burst of twelve on one partition started up to 0.6 s late
  (``python -m bench road``). A longer ``Retry-After`` never waits on a tier whose delay
  does not cover it (:mod:`streams.road.tiers`), so a head holds its partition at most a
  tier's delay. A partition that holds its bound is paused; when a due record is done its
  offset is committed, and only then the partition is sought just past the last record taken
  and resumed (whatever was fetched for it while it was paused was dropped).
* **Parking** holds many (``PARKING_CAPACITY``): its records wait for whatever their target
  asked (up to the Retry-After cap), so due times do *not* follow offsets, and one record told
  to wait an hour must not stop the one behind it told to wait ten minutes. Re-circulating a
  not-yet-due record (produce it again at the end, commit it) was the other way: it costs a
  durable write and a read per record per pass, and either spins or needs this hold anyway.
  Holding several costs memory (bounded: ``PARKING_CAPACITY`` records and
  ``PARKING_MAX_BYTES`` per partition, then that partition pauses) and, after a crash, redoing
  the records already finished past the lowest unfinished one — harmless, every effect is
  idempotent and a re-routed record keeps its original coordinates and attempt.

Never skipped by an offset reset: held records are not committed; ``auto.offset.reset`` is
pinned to ``earliest``, so a group without a committed offset (new, or one whose offsets the
broker expired after ``offsets.retention.minutes`` of the group being *empty* — a live group's
offsets never expire) re-reads the topic rather than jumping past what it held; and the road's
topics keep records two weeks (``topics/registry.py``), far longer than the longest hold.

Records due together (one poll's worth, or the held ones whose time came) run as a batch per
partition through :func:`~streams.road.batch.process_batch`; their offsets are committed,
synchronously and once for the batch, only after it returned, i.e. after every effect or
hand-off to the next hop is durable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from streams.consumer import ConsumerLoop
from streams.road import metrics
from streams.road.batch import process_batch
from streams.road.holds import Holds
from streams.road.pipeline import Pipeline
from streams.road.record import RoadRecord
from streams.road.router import FailureRouter
from synapseops.kafka import consumer_config
from synapseops.logging import get_logger
from synapseops.settings import KafkaSettings

log = get_logger(__name__)

Partition = tuple[str, int]

# Longest a poll may block: bounds how late a stop or a resume can be noticed.
MAX_POLL_S = 0.5
# What the parking consumer keeps in memory per partition before pausing it.
PARKING_CAPACITY = 1000
PARKING_MAX_BYTES = 16 * 1_048_576
# What a retry tier's consumer keeps in memory per partition (a poll's worth, bounded in bytes).
TIER_CAPACITY = 500
TIER_MAX_BYTES = 2 * 1_048_576


def _now_ms() -> int:
    return int(time.time() * 1000)


class TierConsumer(ConsumerLoop):
    """Consumes ``pipeline``'s retry tier ``tier`` (0-based), or its parking topic when
    ``tier`` is None; group ``<group>.<pipeline>.tiers``."""

    def __init__(
        self,
        pipeline: Pipeline,
        tier: int | None,
        router: FailureRouter,
        kafka: KafkaSettings,
        worker_group: str,
        *,
        clock_ms: Callable[[], int] = _now_ms,
        consumer_overrides: Mapping[str, Any] | None = None,
        batch_size: int = 500,
    ) -> None:
        self.pipeline = pipeline
        self.tier = tier
        parking = tier is None
        if tier is None:
            self.topic, self.label = pipeline.spec.parking_topic, "parking"
        else:
            self.topic, self.label = pipeline.spec.retry_topic(tier), str(tier + 1)
        self.group_id = pipeline.tier_group(worker_group)
        self._router = router
        self._clock_ms = clock_ms
        config = consumer_config(
            kafka,
            self.group_id,
            # Other tiers of the pipeline share the group: cooperative rebalancing keeps one
            # tier's join from revoking (and re-reading) every other tier's partitions.
            **{
                "partition.assignment.strategy": "cooperative-sticky",
                # A resumed partition is fetched at the next fetch; keep that wait short so a
                # record starts close to its due time.
                "fetch.wait.max.ms": 200,
                # Members learn of a rebalance from a heartbeat: a short interval keeps a
                # scale-out from holding the tier's partitions (and their due records) for 3 s.
                "heartbeat.interval.ms": 1000,
                **dict(consumer_overrides or {}),
                # Never "latest": a group without a committed offset must re-read what it may
                # have held, not jump past it (module docstring).
                "auto.offset.reset": "earliest",
            },
        )
        super().__init__(config, name=f"tier-{self.topic}", batch_size=batch_size)
        self._holds = (
            Holds(PARKING_CAPACITY, PARKING_MAX_BYTES)
            if parking
            else Holds(TIER_CAPACITY, TIER_MAX_BYTES)
        )
        self._uncommitted: dict[Partition, int] = {}  # partition → offset, not yet committed
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set once the group gave this consumer its first partitions (tests wait on it).
        self.assigned = asyncio.Event()

    # ---- lifecycle (the loop itself is streams.consumer's) ------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` as a task of the running loop and return it."""
        return self.start_task()

    async def on_start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.subscribe([self.topic])
        log.info("tier consumer started", extra=self._where())

    async def on_stopped(self) -> None:
        log.info("tier consumer stopped", extra=self._where())

    async def before_poll(self) -> None:
        await self._run_due()

    def poll_timeout(self) -> float:
        return self._poll_timeout()

    async def after_poll(self, consumer: Consumer) -> None:
        if self._uncommitted:
            await self.call(self._commit_uncommitted, consumer)

    async def on_messages(self, consumer: Consumer, messages: list[Message]) -> None:
        due: list[tuple[RoadRecord, int]] = []
        for message in messages:
            record = RoadRecord.from_confluent(message)
            if not self._holds.take(record):
                continue  # fetched before its paused partition stopped: read again on resume
            due_ms = record.history.not_before_ms or 0
            if due_ms > self._clock_ms():
                if self._holds.hold(record, due_ms):
                    tp = TopicPartition(record.topic, record.partition)
                    await self.call(consumer.pause, [tp])
                continue
            due.append((record, due_ms))
        await self._run(consumer, due)

    # ---- the hold ---------------------------------------------------------------------

    def _poll_timeout(self) -> float:
        earliest = self._holds.earliest_due()
        if earliest is None:
            return MAX_POLL_S
        return min(MAX_POLL_S, max(0.0, (earliest - self._clock_ms()) / 1000))

    async def _run_due(self) -> None:
        """Run every held record that is due (earliest first)."""
        consumer = self.consumer
        if consumer is None:
            return
        await self._run(consumer, self._holds.due(self._clock_ms()))

    async def _run(self, consumer: Consumer, due: list[tuple[RoadRecord, int]]) -> None:
        """Run ``due`` records — a batch per partition, partitions side by side — then commit
        once for all of them, and resume the partitions that have room again."""
        if not due:
            return
        by_partition: dict[Partition, list[RoadRecord]] = {}
        now_ms = self._clock_ms()
        for record, due_ms in due:
            if due_ms:
                lag_s = (now_ms - due_ms) / 1000
                metrics.TIER_HOLD_LAG.labels(self.pipeline.name, self.label).observe(lag_s)
            by_partition.setdefault((record.topic, record.partition), []).append(record)
        await asyncio.gather(
            *(process_batch(self.pipeline, run, self._router) for run in by_partition.values())
        )
        resumes: list[tuple[RoadRecord, int]] = []
        for record, _ in due:
            finished = self._holds.finish(record)
            self._uncommitted[(record.topic, record.partition)] = finished.commit_offset
            if finished.resume_at is not None:
                resumes.append((record, finished.resume_at))
        await self.call(self._commit_uncommitted, consumer)
        for record, offset in resumes:
            await self.call(self._resume, consumer, record, offset)

    def _resume(self, consumer: Consumer, record: RoadRecord, offset: int) -> None:
        # Seek before resuming: whatever was fetched while the partition was being paused was
        # not taken, so it must be fetched again from here.
        try:
            consumer.seek(TopicPartition(record.topic, record.partition, offset))
            consumer.resume([TopicPartition(record.topic, record.partition)])
        except KafkaException as exc:
            log.warning(
                "could not resume a tier partition",
                extra=self._where() | {"partition": record.partition, "error": str(exc)},
            )

    def _commit_uncommitted(
        self, consumer: Consumer, only: list[TopicPartition] | None = None
    ) -> None:
        """Commit the done-but-uncommitted offsets (of ``only`` these partitions), blocking.

        A commit the group refuses (a rebalance bumped its generation) stays pending and is
        tried again after the next poll, and in the revoke callback before a partition leaves:
        a lost commit would make the partition's next owner redo records that are done.
        """
        wanted = {(tp.topic, tp.partition) for tp in only} if only is not None else None
        pending = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in self._uncommitted.items()
            if wanted is None or (topic, partition) in wanted
        ]
        if not pending or not self.commit(consumer, pending):
            return  # a refused commit stays pending: tried again after the next poll
        for tp in pending:
            if self._uncommitted.get((tp.topic, tp.partition)) == tp.offset:
                del self._uncommitted[(tp.topic, tp.partition)]

    # ---- rebalance and errors ---------------------------------------------------------

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.incremental_assign(partitions)
        # librdkafka may remember a pause across a revoke and a later re-assign; a new
        # partition has no hold here, so it must flow.
        _resume_quietly(consumer, partitions)
        log.info(
            "tier partitions assigned",
            extra=self._where() | {"partitions": [tp.partition for tp in partitions]},
        )
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.assigned.set)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # A revoked partition's hold is its next owner's business: it reads from the committed
        # offset, which is at or before the held head.
        # Still a member of this generation here: the last chance to commit what is done.
        self._commit_uncommitted(consumer, only=partitions)
        for tp in partitions:
            self._uncommitted.pop((tp.topic, tp.partition), None)
        paused = [tp for tp in partitions if self._holds.drop((tp.topic, tp.partition))]
        _resume_quietly(consumer, paused)
        log.info(
            "tier partitions revoked",
            extra=self._where() | {"partitions": [tp.partition for tp in partitions]},
        )

    # ---- helpers ----------------------------------------------------------------------

    def _where(self) -> dict[str, object]:
        return {"pipeline": self.pipeline.name, "topic": self.topic, "group": self.group_id}


def tier_consumers(
    pipeline: Pipeline,
    router: FailureRouter,
    kafka: KafkaSettings,
    worker_group: str,
    **options: Any,
) -> list[TierConsumer]:
    """One :class:`TierConsumer` per retry tier of ``pipeline``, then its parking consumer
    (none started)."""
    tiers: list[int | None] = [*range(len(pipeline.spec.retry_delays)), None]
    return [TierConsumer(pipeline, tier, router, kafka, worker_group, **options) for tier in tiers]


def _resume_quietly(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    if not partitions:
        return
    try:
        consumer.resume([TopicPartition(tp.topic, tp.partition) for tp in partitions])
    except KafkaException as exc:
        log.debug("resume during rebalance refused", extra={"error": str(exc)})
