"""Partitions of a Kafka-topic source held back after a failure: :class:`Holds`.

When a record could not be forwarded or delivered for a reason that may pass, its partition
waits: nothing at or after that record is committed, the partition is paused, and after a
backoff (1 s, doubling to :data:`MAX_BACKOFF_S`) it is sought back to the record and resumed,
on probation until a run from that record gets through. Other partitions flow meanwhile.

The work that finds the failure runs in a partition lane (``streams/partition_lanes.py``) and
never calls the consumer: it only records the hold (:meth:`Holds.hold`). The consumer loop
applies them on the consumer's thread before each poll (:meth:`Holds.apply`: pause what is new,
seek back and resume what is due). Records fetched between the failure and the seek are
stale — they come after the held record — and :meth:`Holds.blocks` drops them: every run
carries the number of the poll that fetched it, and a held partition takes only runs of polls
after its resume.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.road.record import RoadRecord
from streams.source_metrics import SOURCE_FAILURES
from synapseops.logging import get_logger

log = get_logger(__name__)

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 300.0

Partition = tuple[str, int]


@dataclass
class Hold:
    """A partition held back at ``offset``: when to try again (``None`` once resumed, on
    probation), the delay that was waited, whether the loop paused it already, and the last
    poll before it was resumed (its runs are stale)."""

    offset: int
    retry_at: float | None
    delay: float
    paused: bool = False
    resumed_after: int = 0


class Holds:
    """The held partitions of one source consumer."""

    def __init__(self) -> None:
        self._held: dict[Partition, Hold] = {}

    def blocks(self, records: Sequence[RoadRecord], poll: int) -> bool:
        """Whether one partition's ``records``, fetched by poll number ``poll``, must wait:
        their partition is held, and not resumed before that poll (read again once it is)."""
        held = self._held.get((records[0].topic, records[0].partition))
        return held is not None and (held.retry_at is not None or poll <= held.resumed_after)

    def hold(self, record: RoadRecord, exc: Exception, endpoints: list[str]) -> None:
        """Hold ``record``'s partition from ``record`` on (a longer wait if it was held)."""
        where = (record.topic, record.partition)
        held = self._held.get(where)
        delay = min(held.delay * 2, MAX_BACKOFF_S) if held is not None else FIRST_BACKOFF_S
        self._held[where] = Hold(record.offset, time.monotonic() + delay, delay)
        SOURCE_FAILURES.labels("kafka", "forward_failed").inc()
        log.warning(
            "kafka source record not forwarded; its partition waits and retries",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "endpoints": endpoints,
                "retry_in_s": delay,
                "error": f"{type(exc).__name__}: {exc}",
            },
        )

    def holding(self, where: Partition) -> bool:
        """Whether ``where`` waits for its retry (paused until then)."""
        held = self._held.get(where)
        return held is not None and held.retry_at is not None

    def release(self, where: Partition) -> None:
        """A run of ``where`` got through: its probation is over."""
        self._held.pop(where, None)

    def drop(self, partitions: Iterable[Partition]) -> None:
        for where in partitions:
            self._held.pop(where, None)

    def clear(self) -> None:
        self._held.clear()

    def apply(self, consumer: Consumer, polls: int) -> None:
        """On the consumer's thread, after poll number ``polls``: pause what is newly held,
        resume what is due."""
        now = time.monotonic()
        for (topic, partition), hold in list(self._held.items()):
            if not hold.paused:
                try:
                    consumer.pause([TopicPartition(topic, partition)])
                    hold.paused = True
                except KafkaException as exc:
                    log.debug("pause refused", extra={"partition": partition, "error": str(exc)})
            if hold.retry_at is None or hold.retry_at > now:
                continue
            try:
                # Back to the record that failed (what was fetched behind it is dropped).
                consumer.seek(TopicPartition(topic, partition, hold.offset))
                consumer.resume([TopicPartition(topic, partition)])
            except KafkaException as exc:
                log.warning(
                    "kafka source partition not resumed",
                    extra={"topic": topic, "partition": partition, "error": str(exc)},
                )
                continue
            hold.retry_at, hold.resumed_after = None, polls
