"""Produce a whole batch through confluent-kafka and await it once.

``AsyncProducer.send`` (``synapseops.kafka``) gives each record its own future and its own hop
back onto the event loop — fine for a webhook, ~10 µs a record in a stream. Here a batch shares
one counter (touched only by the poll thread that runs delivery callbacks) and one future,
resolved with one ``call_soon_threadsafe`` when the last record of the batch was delivered.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from confluent_kafka import KafkaError, Message, Producer

from synapseops.kafka import producer_config
from synapseops.settings import KafkaSettings


class DeliveryFailed(Exception):
    """At least one record of a batch did not land; the batch must not be acked."""


class BatchSender:
    def __init__(self, bootstrap: str, linger_ms: int = 5) -> None:
        kafka = KafkaSettings(bootstrap=bootstrap, client_id="bench-faust-confluent")
        config = producer_config(kafka, **{"linger.ms": linger_ms, "batch.size": 1_000_000})
        self._producer = Producer(config)
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True, name="batch-sender")
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    def send_batch(
        self, topic: str, records: Sequence[tuple[bytes | None, bytes]]
    ) -> asyncio.Future[None]:
        """Produce every record; the future resolves once all are durable (or fails)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not records:
            done.set_result(None)
            return done
        left = len(records)
        errors: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            nonlocal left
            left -= 1
            if err is not None:
                errors.append(err)
            if left == 0:
                loop.call_soon_threadsafe(_settle, done, errors)

        produce = self._producer.produce
        for key, value in records:
            while True:
                try:
                    produce(topic, value, key=key, on_delivery=delivered)
                    break
                except BufferError:
                    self._producer.flush(0.05)  # local queue full: wait for the broker
        return done

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._closed.set()
        self._poller.join(timeout=2.0)


def _settle(done: asyncio.Future[None], errors: list[KafkaError]) -> None:
    if done.done():
        return
    if errors:
        done.set_exception(DeliveryFailed(f"{len(errors)} record(s) failed: {errors[0].str()}"))
    else:
        done.set_result(None)
