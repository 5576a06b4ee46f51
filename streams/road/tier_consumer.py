"""A retry tier's consumer: holds each record until it is due, then runs it through its pipeline.

One :class:`TierConsumer` per retry-tier topic, each an asyncio task inside the worker's loop.
The confluent-kafka consumer is not thread-safe and its calls block, so every call on it runs
in the consumer's own single-thread executor: the calls are serialised and the loop is free.
Rebalance callbacks run inside ``poll`` on that thread while the task awaits the poll, so the
task's state is never touched by two threads at once.

Holding without stalling: records of one tier share a delay, so within a partition the due
times follow the offsets and only a partition's head can be early. When the head is not due,
the partition is paused and the consumer seeks back to the head; the task keeps polling (other
partitions flow, ``max.poll.interval.ms`` is never broken) and resumes the partition when the
earliest held due time has passed. A record's offset is committed, synchronously, only after
:func:`~streams.road.pipeline.process` returned, i.e. after its effect or its hand-off to the
next hop is durable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.road import metrics
from streams.road.pipeline import Pipeline, process
from streams.road.record import RoadRecord
from streams.road.router import FailureRouter
from synapseops.errors import KafkaUnavailable
from synapseops.kafka import consumer_config
from synapseops.logging import get_logger
from synapseops.settings import KafkaSettings

log = get_logger(__name__)

T = TypeVar("T")
Partition = tuple[str, int]

# Longest a poll may block: bounds how late a stop or a resume can be noticed.
MAX_POLL_S = 0.5


def _now_ms() -> int:
    return int(time.time() * 1000)


class TierConsumer:
    """Consumes ``pipeline``'s retry tier ``tier`` (0-based); group ``<group>.<pipeline>.tiers``."""

    def __init__(
        self,
        pipeline: Pipeline,
        tier: int,
        router: FailureRouter,
        kafka: KafkaSettings,
        worker_group: str,
        *,
        clock_ms: Callable[[], int] = _now_ms,
        consumer_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.tier = tier
        self.topic = pipeline.spec.retry_topic(tier)
        self.group_id = pipeline.tier_group(worker_group)
        self._router = router
        self._clock_ms = clock_ms
        self._config = consumer_config(
            kafka,
            self.group_id,
            # Other tiers of the pipeline share the group: cooperative rebalancing keeps one
            # tier's join from revoking (and re-reading) every other tier's partitions.
            **{
                "partition.assignment.strategy": "cooperative-sticky",
                # A resumed partition is fetched at the next fetch; keep that wait short so a
                # record starts close to its due time.
                "fetch.wait.max.ms": 200,
                **dict(consumer_overrides or {}),
            },
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tier-{self.topic}")
        self._consumer: Consumer | None = None
        self._held: dict[Partition, tuple[int, int]] = {}  # partition → (head offset, due ms)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set once the group gave this consumer its first partitions (tests wait on it).
        self.assigned = asyncio.Event()

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` as a task of the running loop and return it."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name=f"tier-consumer:{self.topic}"
            )
        return self._task

    async def stop(self, grace_s: float = 15.0) -> None:
        """Finish the record in hand, leave the group and close. Uncommitted records are read
        again by whoever gets their partition."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace_s)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        consumer = await self._call(Consumer, self._config)
        self._consumer = consumer
        try:
            await self._call(
                consumer.subscribe,
                [self.topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            log.info("tier consumer started", extra=self._where())
            while not self._stopping.is_set():
                await self._resume_due(consumer)
                message = await self._call(consumer.poll, self._poll_timeout())
                if message is not None:
                    await self._handle(consumer, message)
        finally:
            # Shielded: a cancelled task still leaves the group cleanly instead of holding its
            # partitions until the session times out.
            await asyncio.shield(self._call(consumer.close))
            self._executor.shutdown(wait=False)
            log.info("tier consumer stopped", extra=self._where())

    # ---- the hold ---------------------------------------------------------------------

    def _poll_timeout(self) -> float:
        if not self._held:
            return MAX_POLL_S
        earliest = min(due for _, due in self._held.values())
        return min(MAX_POLL_S, max(0.0, (earliest - self._clock_ms()) / 1000))

    async def _resume_due(self, consumer: Consumer) -> None:
        now = self._clock_ms()
        due = [tp for tp, (_, due_ms) in self._held.items() if due_ms <= now]
        if not due:
            return
        for tp in due:
            del self._held[tp]
        await self._call(consumer.resume, [TopicPartition(t, p) for t, p in due])

    async def _hold(self, consumer: Consumer, tp: Partition, offset: int, due_ms: int) -> None:
        self._held[tp] = (offset, due_ms)
        # Pause first, then seek: the seek drops whatever was already fetched past the head,
        # and the paused partition is fetched from the head again once resumed.
        await self._call(consumer.pause, [TopicPartition(*tp)])
        await self._call(consumer.seek, TopicPartition(tp[0], tp[1], offset))

    async def _handle(self, consumer: Consumer, message: Message) -> None:
        error = message.error()
        if error is not None:
            self._on_error(error)
            return
        record = RoadRecord.from_confluent(message)
        tp = (record.topic, record.partition)
        held = self._held.get(tp)
        if held is not None:
            # Fetched before the pause took effect: its partition waits on an earlier head.
            await self._call(consumer.seek, TopicPartition(tp[0], tp[1], held[0]))
            return
        due_ms = record.history.not_before_ms or 0
        now = self._clock_ms()
        if due_ms > now:
            await self._hold(consumer, tp, record.offset, due_ms)
            return
        if due_ms:
            metrics.TIER_HOLD_LAG.labels(self.pipeline.name, str(self.tier + 1)).observe(
                (now - due_ms) / 1000
            )
        await process(self.pipeline, record, self._router)
        await self._commit(consumer, record)

    async def _commit(self, consumer: Consumer, record: RoadRecord) -> None:
        offsets = [TopicPartition(record.topic, record.partition, record.offset + 1)]
        try:
            await self._call(consumer.commit, offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Not fatal for the record: its effect or hand-off is durable. The partition's next
            # commit covers it; if the partition moved away, its new owner redoes the record
            # (handlers are idempotent).
            log.warning(
                "commit failed",
                extra=self._where()
                | {"partition": record.partition, "offset": record.offset, "error": str(exc)},
            )

    # ---- rebalance and errors ---------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
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

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # A revoked partition's hold is its next owner's business: it reads from the committed
        # offset, which is at or before the held head.
        held = [tp for tp in partitions if self._held.pop((tp.topic, tp.partition), None)]
        _resume_quietly(consumer, held)
        log.info(
            "tier partitions revoked",
            extra=self._where() | {"partitions": [tp.partition for tp in partitions]},
        )

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise KafkaUnavailable(f"tier consumer of {self.topic} failed: {error.str()}")
        log.warning("tier consumer error", extra=self._where() | {"error": error.str()})

    # ---- helpers ----------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _where(self) -> dict[str, object]:
        return {"pipeline": self.pipeline.name, "topic": self.topic, "group": self.group_id}


def tier_consumers(
    pipeline: Pipeline,
    router: FailureRouter,
    kafka: KafkaSettings,
    worker_group: str,
    **options: Any,
) -> list[TierConsumer]:
    """One :class:`TierConsumer` per retry tier of ``pipeline`` (not started)."""
    return [
        TierConsumer(pipeline, tier, router, kafka, worker_group, **options)
        for tier in range(len(pipeline.spec.retry_delays))
    ]


def _resume_quietly(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    if not partitions:
        return
    try:
        consumer.resume([TopicPartition(tp.topic, tp.partition) for tp in partitions])
    except KafkaException as exc:
        log.debug("resume during rebalance refused", extra={"error": str(exc)})
