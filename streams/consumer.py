"""The one confluent-kafka consumer loop under every background consumer of a worker.

The retry-tier and parking consumers (:mod:`streams.road.tier_consumer`), the dead-letter
store (:mod:`streams.dead_letters`), the Kafka-topic source forwarder
(:mod:`streams.integration.kafka_source`) and the coming warehouse loader differ in what they
do with a record; how a consumer lives is the same for all, and is this class:

- **one thread per consumer.** The client is not thread-safe and its calls block, so every
  call on it runs in the consumer's own single-thread executor (:meth:`ConsumerLoop.call`):
  calls are serialised and the event loop stays free. Rebalance callbacks run inside
  ``poll`` on that thread while the loop awaits the poll, so a subclass's state is never
  touched by two threads at once.
- **a supervised unit.** :meth:`run` works until :meth:`stop` (``streams/supervision.py``);
  an exception out of ``run`` (a fatal client error, a bug) means it died, and the supervisor
  builds a fresh one. ``run`` sets up and tears down everything it uses: the executor, the
  consumer (closed shielded, so a cancelled task still leaves its group cleanly instead of
  holding its partitions until the session times out). :meth:`start_task` runs it as a task
  of its own instead (tests).
- **the loop.** ``before_poll`` (run what is due), ``poll`` (:meth:`poll_timeout`; then what
  else is fetched already, up to ``batch_size``), ``after_poll`` (commit what is pending),
  then the messages: a client error goes to :meth:`on_error` (fatal →
  :class:`~synapseops.errors.KafkaUnavailable`, the supervisor restarts the unit; end of
  partition is ignored; anything else is logged), the records to :meth:`on_messages` (by
  default :meth:`on_message` each; a subclass handling a batch at once commits once for it).
  A subclass without a subscription yet (no topics to read) polls nothing.
- **commit and rewind.** :meth:`commit` commits offsets synchronously and says whether the
  group took them (a rebalance may refuse: the caller keeps them or lets the partition's next
  owner redo the record); :meth:`rewind` seeks a partition back to a record.

What a subclass keeps of its own — holds, backoffs, which offsets are done — it keeps in its
``on_message`` and in its rebalance callbacks (:meth:`on_assign`, :meth:`on_revoke`,
:meth:`on_lost`), which this class wires to every subscription it makes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from synapseops.errors import KafkaUnavailable
from synapseops.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

# Longest a poll may block: bounds how late a stop (or a due record) can be noticed.
POLL_S = 0.5


class ConsumerLoop:
    """One consumer with the configuration ``config``, run by :meth:`run` until :meth:`stop`.

    ``name`` names the thread and the task. Subclasses implement :meth:`on_message` and, to
    read anything, call :meth:`subscribe` (the default :meth:`on_start` subscribes to
    :meth:`subscription`).
    """

    def __init__(self, config: Mapping[str, Any], *, name: str, batch_size: int = 1) -> None:
        self._config = dict(config)
        self.name = name
        self.batch_size = batch_size
        self._executor: ThreadPoolExecutor | None = None
        self._consumer: Consumer | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ---- what a subclass says ---------------------------------------------------------

    def subscription(self) -> Sequence[str]:
        """What :meth:`on_start` subscribes to (a subclass that subscribes itself ignores it)."""
        return ()

    async def on_start(self) -> None:
        """Set up before the first poll; by default subscribe to :meth:`subscription`."""
        topics = list(self.subscription())
        if topics:
            await self.subscribe(topics)

    async def on_stopped(self) -> None:
        """Called once the consumer is closed (a log line, counters)."""

    async def before_poll(self) -> None:
        """Work before each poll (records whose time has come, a refreshed subscription)."""

    def poll_timeout(self) -> float:
        return POLL_S

    async def after_poll(self, consumer: Consumer) -> None:
        """Work after each poll, before its message (commits that were refused before)."""

    async def on_message(self, consumer: Consumer, message: Message) -> None:
        """One record (never a client error: those go to :meth:`on_error`)."""
        raise NotImplementedError

    async def on_messages(self, consumer: Consumer, messages: list[Message]) -> None:
        """The records of one poll, in the order the client gave them (per partition, offset
        order); by default :meth:`on_message` each. A subclass that handles them together
        (and commits once) overrides this."""
        for message in messages:
            await self.on_message(consumer, message)

    def on_error(self, error: KafkaError) -> None:
        """A client error in place of a message: fatal ends the unit, the rest is logged."""
        if error.fatal():
            raise KafkaUnavailable(f"consumer {self.name} failed: {error.str()}")
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error", extra={"consumer": self.name, "error": error.str()})

    # Rebalance callbacks (run on the consumer's thread, inside poll).

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions gained; the client assigns them when this returns without doing so."""

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions about to leave (still a member: the last chance to commit)."""

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions lost without a revoke (the group moved on): by default, as revoked."""
        self.on_revoke(consumer, partitions)

    # ---- what this class gives --------------------------------------------------------

    @property
    def consumer(self) -> Consumer | None:
        return self._consumer

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on the consumer's own thread."""
        assert self._executor is not None, "run() first"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def subscribe(self, topics: Sequence[str]) -> Consumer:
        """A fresh consumer subscribed to ``topics`` (any previous one is closed first)."""
        await self.close_consumer()
        consumer: Consumer = await self.call(Consumer, self._config)
        self._consumer = consumer
        await self.call(
            consumer.subscribe,
            list(topics),
            on_assign=self.on_assign,
            on_revoke=self.on_revoke,
            on_lost=self.on_lost,
        )
        return consumer

    async def close_consumer(self) -> None:
        """Leave the group and close; shielded, so a cancelled task still leaves cleanly."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await asyncio.shield(self.call(consumer.close))

    def commit(self, consumer: Consumer, offsets: list[TopicPartition]) -> bool:
        """Commit ``offsets`` synchronously (blocking: call it through :meth:`call`); whether
        the group took them. A refusal (a rebalance bumped the generation) is logged."""
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning(
                "commit refused",
                extra={
                    "consumer": self.name,
                    "partitions": [f"{tp.topic}/{tp.partition}" for tp in offsets],
                    "error": str(exc),
                },
            )
            return False
        return True

    def rewind(self, consumer: Consumer, topic: str, partition: int, offset: int) -> bool:
        """Seek ``topic/partition`` back to ``offset`` (blocking); whether it could."""
        try:
            consumer.seek(TopicPartition(topic, partition, offset))
        except KafkaException as exc:
            log.warning(
                "rewind failed",
                extra={
                    "consumer": self.name,
                    "topic": topic,
                    "partition": partition,
                    "error": str(exc),
                },
            )
            return False
        return True

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when a stop is asked."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    # ---- lifecycle --------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until :meth:`stop`; raises only what no record explains."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        try:
            await self.on_start()
            while not self._stopping.is_set():
                await self.before_poll()
                consumer = self._consumer
                if consumer is None:
                    await self.sleep(self.poll_timeout())
                    continue
                taken = await self.call(self._take, consumer, self.poll_timeout())
                await self.after_poll(consumer)
                records = []
                for message in taken:
                    error = message.error()
                    if error is not None:
                        self.on_error(error)
                    else:
                        records.append(message)
                if records:
                    await self.on_messages(consumer, records)
        finally:
            await self.close_consumer()
            self._executor.shutdown(wait=False)
            self._executor = None
            await self.on_stopped()

    def _take(self, consumer: Consumer, timeout: float) -> list[Message]:
        """Wait up to ``timeout`` for one message, then take what else is already fetched, up
        to :attr:`batch_size` in all (blocking: on the consumer's thread). ``consume`` alone
        would wait for a full batch; a record must not wait for records that are not there."""
        first = consumer.poll(timeout)
        if first is None:
            return []
        if self.batch_size <= 1:
            return [first]
        return [first, *consumer.consume(self.batch_size - 1, 0)]

    def start_task(self) -> asyncio.Task[None]:
        """Run :meth:`run` as a task of the running loop (tests; the worker supervises it)."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self.run(), name=self.name)
        return self._task

    async def stop(self, grace_s: float = 15.0) -> None:
        """Ask the loop to stop: it finishes the record in hand and leaves the group. With a
        task of its own, wait up to ``grace_s`` for it, then cancel it. A record not
        committed by then is read again by whoever gets its partition."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), grace_s)
            except TimeoutError:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
