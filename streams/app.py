"""The Faust app factory. No module builds an app at import time; processes call this.

Topics are created by the registry (``topics.admin``), never by Faust: ``topic_allow_declare``
is off so a typo in a topic name fails loudly instead of creating a stray topic, and the
leader topic is disabled because no agent here needs leader election.

The app's consumer is Faust's aiokafka one with two changes. A partition whose log starts over
(its topic deleted and re-created under the consumer) is read from its new start
(:func:`forget_an_old_log`). And (:class:`RoadApp`) the fetch
wait is ``SYNAPSEOPS_KAFKA_FETCH_MAX_WAIT_MS`` instead of Faust's fixed 1,500 ms. aiokafka keeps
one fetch in flight per broker and leaves out of it every partition whose fetched records are
still being handled. When all busy partitions were so (a batch in hand each), the fetch held
only idle ones — the commands topic, a quiet input — and the broker held it the full wait: the
busy partitions' next records came 1.5 s later, and paced payments reached the ledger in 1.5 s
waves (p99 1.7 s at 500 events/s on an idle machine; 0.6 s with the wait at 20 ms).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message, TransportT

from synapseops.logging import get_logger
from synapseops.settings import Settings

log = get_logger(__name__)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:  # an aiokafka AIOKafkaConsumer
        consumer = super()._create_worker_consumer(transport)
        # Read once, by start(), when it builds the fetcher: set before the consumer starts.
        consumer._fetch_max_wait_ms = cast(RoadApp, self.app).fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # Faust's own signature (it calls this), hence its timeout parameter.
    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ASYNC109
        """Faust's records, with what it remembers of a partition's old log forgotten when
        the log starts over (:func:`forget_an_old_log`)."""
        read = self._read_offset
        async for tp, message in super().getmany(timeout):
            last = read.get(tp)
            if last is not None and message.offset < last:
                forget_an_old_log(self, tp, last, message.offset)
            yield tp, message


def forget_an_old_log(consumer: Any, tp: TP, last: int, offset: int) -> None:
    """A record below the last one read, though nothing of Faust's sought back: aiokafka
    reset the position (``auto_offset_reset``, the old one out of range), i.e. the topic
    was deleted and re-created under the consumer without a rebalance between (both inside
    one metadata refresh). Faust drops every record below the last offset it read, so the
    new log would go unread until it grew past the old one (a CI rehearsal: six triggers on a
    re-created topic, unread for 120 s). Forget the partition's read, acked and committed
    offsets, as Faust does for a revoked partition."""
    log.warning(
        "a partition's log started over: reading it from its new start",
        extra={"topic": tp.topic, "partition": tp.partition, "last": last, "offset": offset},
    )
    for bookkeeping in (
        consumer._read_offset,
        consumer._gap,
        consumer._acked,
        consumer._acked_index,
        consumer._committed_offset,
    ):
        bookkeeping.pop(tp, None)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class RoadApp(faust.App):
    """A Faust app whose consumer's fetch wait is the project's (module docstring)."""

    fetch_max_wait_ms: int = 1500

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)


def broker_url(settings: Settings) -> str:
    """``kafka://host:port;host:port`` from ``SYNAPSEOPS_KAFKA_BOOTSTRAP``."""
    servers = [part.strip() for part in settings.kafka.bootstrap.split(",") if part.strip()]
    return ";".join(f"kafka://{server}" for server in servers)


def create_app(settings: Settings) -> faust.App:
    app = RoadApp(
        settings.worker.group_id,
        broker=broker_url(settings),
        broker_client_id=settings.kafka.client_id,
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        # acks=all: a record Faust produces counts only once every in-sync replica has it.
        producer_acks=-1,
        # A worker killed with -9 gives its partitions up after this, not after Faust's 60 s.
        broker_session_timeout=settings.kafka.session_timeout_s,
        broker_heartbeat_interval=settings.kafka.heartbeat_interval_s,
        # A re-created input topic is assigned again within this (synapseops/settings).
        consumer_metadata_max_age_ms=int(settings.kafka.metadata_max_age_s * 1000),
        # A new consumer group starts from the oldest retained record: nothing accepted at
        # ingress before the first worker ran is skipped.
        consumer_auto_offset_reset="earliest",
        # Faust's own data dir (tables' changelog state) lives under the project's data folder.
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        # Bounded intake (streams/road/intake.py): each partition's queue holds at most this
        # many records; Faust pauses the partition at 80% of it. One poll adds at most a fifth
        # of it to a queue, so it never overfills one and stalls the conductor for the rest.
        stream_buffer_maxsize=settings.road.buffer_records,
        broker_max_poll_records=max(1, settings.road.buffer_records // 5),
    )
    app.fetch_max_wait_ms = settings.kafka.fetch_max_wait_ms
    return app
