"""The harness' own Kafka work: topics, the input produced once, progress, reading an output."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from bench.peers.verify import OutputCheck
from synapseops.kafka import create_admin, producer_config
from synapseops.settings import KafkaSettings


def create_topics(kafka: KafkaSettings, names: Iterable[str], partitions: int) -> None:
    admin = create_admin(kafka)
    new = [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
    for future in admin.create_topics(new, operation_timeout=30).values():
        future.result()
    # A topic created a moment ago may not have a leader yet on every partition.
    deadline = time.monotonic() + 30
    for name in (topic.topic for topic in new):
        while time.monotonic() < deadline:
            meta = admin.list_topics(name, timeout=10).topics.get(name)
            if meta and meta.partitions and all(p.leader >= 0 for p in meta.partitions.values()):
                break
            time.sleep(0.2)


def delete_topics(kafka: KafkaSettings, names: Iterable[str]) -> None:
    futures = create_admin(kafka).delete_topics(list(names), operation_timeout=30)
    for future in futures.values():
        try:
            future.result()
        except Exception:  # noqa: BLE001 - already gone is fine for a scratch topic
            pass


def produce_all(kafka: KafkaSettings, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    producer = Producer(producer_config(kafka, **{"linger.ms": 50, "batch.size": 1_000_000}))
    failures: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            failures.append(err)

    count = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key=key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) or failures:
        raise RuntimeError(f"the input did not land: {failures[:1]}")
    return count


class TopicWatch:
    """How many records a topic holds (the sum of its partitions' end offsets)."""

    def __init__(self, kafka: KafkaSettings, topic: str, partitions: int) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": kafka.bootstrap, "group.id": "bench-peers-watch"}
        )
        self._parts = [TopicPartition(topic, p) for p in range(partitions)]
        self._last = 0

    def count(self) -> int:
        """The current count; the last one known while a partition's leader is being elected
        (a topic created a moment ago answers NOT_LEADER for a little while)."""
        try:
            self._last = sum(
                self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
                for tp in self._parts
            )
        except KafkaException:
            pass
        return self._last

    def close(self) -> None:
        self._consumer.close()


def read_into(kafka: KafkaSettings, topic: str, partitions: int, check: OutputCheck) -> None:
    """Every record of ``topic`` from its beginning to its current end into ``check``."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": "bench-peers-verify",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        ends = {}
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        idle_since = time.monotonic()
        while ends and time.monotonic() - idle_since < 10:
            batch = consumer.consume(num_messages=10_000, timeout=0.5)
            if batch:
                idle_since = time.monotonic()
            else:
                # A transaction's closing marker takes an offset but is never delivered.
                for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                    if tp.offset >= ends[tp.partition]:
                        ends.pop(tp.partition, None)
            for message in batch:
                if message.error() is not None:
                    continue
                check.add(message.key(), message.value())
                partition = message.partition() or 0
                if (message.offset() or 0) + 1 >= ends.get(partition, 0):
                    ends.pop(partition, None)
    finally:
        consumer.close()
