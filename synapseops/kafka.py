"""The Kafka client factory: every confluent-kafka client in the product is built here.

Producers are durable by construction: ``acks=all`` and ``enable.idempotence=true`` (no
duplicates from the producer's own retries, order kept per partition). :class:`AsyncProducer`
turns a delivery report into an awaitable, so "2xx only once the event is in Kafka" is one
``await``; :meth:`AsyncProducer.send_many` waits once for a whole batch. It counts what it holds
that the broker has not yet acknowledged (:attr:`AsyncProducer.pending`,
:attr:`AsyncProducer.pending_bytes`): ingress refuses new events past a bound on those
(``api/overload.py``) instead of letting librdkafka's queue grow to its 1 GiB default.

A record that did not land is one of two errors (:func:`produce_error`):

* :class:`~synapseops.errors.KafkaRejected` — refused for good, whatever the broker's health:
  too large for the topic or the client (``MSG_SIZE_TOO_LARGE``, ``RECORD_LIST_TOO_LARGE``),
  unknown topic or partition, invalid record or topic, not authorised for the topic. Sending
  it again gives the same answer; the caller must do something else with it.
* :class:`~synapseops.errors.KafkaUnavailable` — everything else (broker down, timeouts, not
  enough replicas, a full queue): worth trying again. An unknown code lands here on purpose: a
  record wrongly retried is visible and waits; one wrongly given up would take another road.

librdkafka's delivery reports do not carry a ``retriable()`` flag, so the decision is by code.
A *fatal* producer error (the idempotent producer lost its guarantees, ``_FATAL``) leaves the
client unusable: :class:`AsyncProducer` then replaces it with a fresh one, and the records that
were in the old one fail with ``KafkaUnavailable`` so their callers send them again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from synapseops.errors import KafkaRejected, KafkaUnavailable
from synapseops.logging import get_logger
from synapseops.settings import KafkaSettings
from synapseops.wakeups import Wakeups

log = get_logger(__name__)

Headers = Sequence[tuple[str, bytes]]
T = TypeVar("T")


@dataclass(frozen=True)
class Outgoing:
    """One record for :meth:`AsyncProducer.send_many`."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers | Mapping[str, bytes] | None = None
    partition: int | None = None


# What became of one record of a batch: where it landed, or why it did not.
Delivery = tuple[int, int] | KafkaRejected | KafkaUnavailable

# Refused for good: sending the same record again cannot succeed (see the module docstring).
PERMANENT_PRODUCE_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError._INVALID_ARG,
    }
)
# Above the largest record a topic of the registry takes (the road's, 4 MiB, in
# topics/registry.py); each topic's own max.message.bytes is enforced by the broker.
PRODUCER_MAX_MESSAGE_BYTES = 5_000_000


def produce_error(topic: str, err: KafkaError) -> KafkaRejected | KafkaUnavailable:
    """The error tree's word for a record ``topic`` did not take (module docstring)."""
    if err.code() in PERMANENT_PRODUCE_ERRORS:
        return KafkaRejected(
            f"kafka refused the record for {topic} for good: {err.str()}", code=err.name()
        )
    return KafkaUnavailable(f"kafka did not take the record for {topic}: {err.str()}")


def is_fatal(err: KafkaError) -> bool:
    return bool(err.fatal()) or err.code() == KafkaError._FATAL


def producer_config(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap,
        "client.id": kafka.client_id,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        # A record that cannot be delivered in this time is reported as failed, so the caller
        # answers 503 instead of hanging.
        "delivery.timeout.ms": 30_000,
        # A topic the cluster does not have fails as UNKNOWN_TOPIC_OR_PART (refused for good)
        # after 5 s, instead of as a 30 s delivery timeout that reads as a broker outage.
        "topic.metadata.propagation.max.ms": 5_000,
        "message.max.bytes": PRODUCER_MAX_MESSAGE_BYTES,
    }
    config.update(overrides)
    return config


def consumer_config(kafka: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap,
        "client.id": kafka.client_id,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": int(kafka.session_timeout_s * 1000),
        "heartbeat.interval.ms": int(kafka.heartbeat_interval_s * 1000),
    }
    config.update(overrides)
    return config


def create_admin(kafka: KafkaSettings) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka.bootstrap, "client.id": kafka.client_id})


def broker_reachable(kafka: KafkaSettings, timeout: float = 3.0) -> bool:
    try:
        metadata = create_admin(kafka).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return bool(metadata.brokers)


class AsyncProducer:
    """An idempotent ``acks=all`` producer whose sends are awaited until durable.

    A background thread serves delivery callbacks; each callback resolves the asyncio future
    of its record on the loop that sent it, through :class:`~synapseops.wakeups.Wakeups` (one
    wake-up of a loop for all the reports a poll brings, not one per record).
    """

    def __init__(self, kafka: KafkaSettings, **overrides: Any) -> None:
        self._config = producer_config(kafka, **overrides)
        self._producer = Producer(self._config)
        self._lock = threading.Lock()
        self._pending = 0
        self._pending_bytes = 0
        self._broken = False
        self._closed = threading.Event()
        self._wakeups = Wakeups()
        self._poller = threading.Thread(target=self._poll_forever, daemon=True, name="kafka-poll")
        self._poller.start()

    def _poll_forever(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.1)

    @property
    def pending(self) -> int:
        """Records produced and not yet reported delivered or failed."""
        return self._pending

    @property
    def pending_bytes(self) -> int:
        """Key, value and header bytes of :attr:`pending` records."""
        return self._pending_bytes

    def _hold(self, size: int) -> None:
        with self._lock:
            self._pending += 1
            self._pending_bytes += size

    def _release(self, size: int) -> None:
        with self._lock:
            self._pending -= 1
            self._pending_bytes -= size

    def _mark_broken(self, err: KafkaError) -> None:
        with self._lock:
            if not self._broken:
                log.error("kafka producer failed fatally; replacing it", extra={"error": err.str()})
            self._broken = True

    def _replace_if_broken(self) -> None:
        with self._lock:
            if not self._broken:
                return
            old, self._producer = self._producer, Producer(self._config)
            self._broken = False
        # Whatever the old client still holds fails now (KafkaUnavailable), so it is sent again;
        # its callbacks are served off the event loop.
        old.purge()
        threading.Thread(target=old.flush, args=(5.0,), daemon=True, name="kafka-drain").start()

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers | Mapping[str, bytes] | None = None,
        partition: int | None = None,
    ) -> tuple[int, int]:
        """Produce and wait until the broker has it on all in-sync replicas.

        Returns ``(partition, offset)``. Raises :class:`KafkaUnavailable` if it did not land
        this time, :class:`KafkaRejected` if it never will (see the module docstring).
        """
        self._replace_if_broken()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, int]] = loop.create_future()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                if is_fatal(err):
                    self._mark_broken(err)
                self._wakeups.soon(loop, _settle_error, future, produce_error(topic, err))
            else:
                result = (msg.partition() or 0, msg.offset() or 0)
                self._wakeups.soon(loop, _settle_result, future, result)

        self._produce(Outgoing(topic, value, key, headers, partition), delivered)
        return await future

    async def send_many(self, records: Sequence[Outgoing]) -> list[Delivery]:
        """Produce every record and wait once, until each landed or failed; one answer per
        record, in order: ``(partition, offset)``, or the :class:`KafkaUnavailable` /
        :class:`KafkaRejected` it failed with (never raised: the caller decides per record).

        The records share one future, resolved from the delivery thread when the last one is
        reported, so a batch costs one hop back onto the event loop instead of one a record.
        """
        self._replace_if_broken()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        answers: list[Delivery | None] = [None] * len(records)
        left = [len(records)]
        lock = threading.Lock()  # callbacks may also run on a draining thread

        def answered(index: int, answer: Delivery) -> None:
            answers[index] = answer
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                self._wakeups.soon(loop, _settle_result, done, None)

        def callback(index: int, topic: str) -> Callable[[KafkaError | None, Message], None]:
            def delivered(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    if is_fatal(err):
                        self._mark_broken(err)
                    answered(index, produce_error(topic, err))
                else:
                    answered(index, (msg.partition() or 0, msg.offset() or 0))

            return delivered

        for index, record in enumerate(records):
            try:
                self._produce(record, callback(index, record.topic))
            except (KafkaUnavailable, KafkaRejected) as exc:
                answered(index, exc)
        if records:
            await done
        return [answer for answer in answers if answer is not None]

    def _produce(
        self, record: Outgoing, delivered: Callable[[KafkaError | None, Message], None]
    ) -> None:
        headers = record.headers
        header_list = list(headers.items()) if isinstance(headers, Mapping) else headers
        kwargs: dict[str, Any] = {"key": record.key, "value": record.value}
        size = record_size(record.key, record.value, header_list)

        def released(err: KafkaError | None, msg: Message) -> None:
            self._release(size)
            delivered(err, msg)

        kwargs["on_delivery"] = released
        if header_list:
            kwargs["headers"] = list(header_list)
        if record.partition is not None:
            kwargs["partition"] = record.partition
        self._hold(size)
        try:
            self._call_produce(record.topic, kwargs)
        except BaseException:
            self._release(size)
            raise

    def _call_produce(self, topic: str, kwargs: dict[str, Any]) -> None:
        try:
            self._producer.produce(topic, **kwargs)
        except BufferError as exc:
            raise KafkaUnavailable("producer queue is full; the broker is not keeping up") from exc
        except KafkaException as exc:
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if err is None:
                raise KafkaUnavailable(f"kafka refused the record for {topic}: {exc}") from exc
            if is_fatal(err):
                self._mark_broken(err)
            raise produce_error(topic, err) from exc

    def flush(self, timeout: float = 10.0) -> int:
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._closed.set()
        self._poller.join(timeout=2.0)


def record_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None
) -> int:
    """The bytes a record holds in the producer (before compression)."""
    size = len(key or b"") + len(value or b"")
    return size + sum(len(name) + len(data or b"") for name, data in headers or ())


def _settle_result(future: asyncio.Future[T], result: T) -> None:
    if not future.done():
        future.set_result(result)


def _settle_error(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
