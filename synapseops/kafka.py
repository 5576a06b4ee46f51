"""The Kafka client factory: every confluent-kafka client in the product is built here.

Producers are durable by construction: ``acks=all`` and ``enable.idempotence=true`` (no
duplicates from the producer's own retries, order kept per partition). :class:`AsyncProducer`
turns a delivery report into an awaitable, so "2xx only once the event is in Kafka" is one
``await``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from synapseops.errors import KafkaUnavailable
from synapseops.settings import KafkaSettings

Headers = Sequence[tuple[str, bytes]]


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
        "message.max.bytes": 2_000_000,
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
    of its record on the loop that sent it.
    """

    def __init__(self, kafka: KafkaSettings, **overrides: Any) -> None:
        self._producer = Producer(producer_config(kafka, **overrides))
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll_forever, daemon=True, name="kafka-poll")
        self._poller.start()

    def _poll_forever(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.1)

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

        Returns ``(partition, offset)``. Raises :class:`KafkaUnavailable` if it did not land.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, int]] = loop.create_future()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                exc = KafkaUnavailable(f"kafka did not take the record for {topic}: {err.str()}")
                loop.call_soon_threadsafe(_settle_error, future, exc)
            else:
                result = (msg.partition() or 0, msg.offset() or 0)
                loop.call_soon_threadsafe(_settle_result, future, result)

        header_list = list(headers.items()) if isinstance(headers, Mapping) else headers
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": delivered}
        if header_list:
            kwargs["headers"] = list(header_list)
        if partition is not None:
            kwargs["partition"] = partition
        try:
            self._producer.produce(topic, **kwargs)
        except BufferError as exc:
            raise KafkaUnavailable("producer queue is full; the broker is not keeping up") from exc
        except KafkaException as exc:
            raise KafkaUnavailable(f"kafka refused the record for {topic}: {exc}") from exc
        return await future

    def flush(self, timeout: float = 10.0) -> int:
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._closed.set()
        self._poller.join(timeout=2.0)


def _settle_result(future: asyncio.Future[tuple[int, int]], result: tuple[int, int]) -> None:
    if not future.done():
        future.set_result(result)


def _settle_error(future: asyncio.Future[tuple[int, int]], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
