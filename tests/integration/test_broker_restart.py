"""A second broker of the project's own (other data folder, other ports) keeps every record
across a stop and a start: the storage is formatted once and never again."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from synapseops.errors import ConfigurationError
from synapseops.kafka import AsyncProducer, consumer_config, create_admin
from synapseops.local.kafka_broker import LocalBroker
from synapseops.local.processes import port_in_use
from synapseops.settings import KafkaSettings, Settings

RECORDS = 300
PARTITIONS = 3


@pytest.fixture
def second_broker(tmp_path: Path, settings: Settings) -> Iterator[LocalBroker]:
    kafka = KafkaSettings(bootstrap="127.0.0.1:19092", controller_port=19093, heap="384m")
    other = Settings(data_dir=tmp_path / "data", kafka=kafka)
    # The jars are the developer's cache: fetched once per machine, not once per test.
    broker = LocalBroker(other, cache_dir=settings.data_dir / "cache")
    yield broker
    broker.stop(timeout=15)


async def _produce(kafka: KafkaSettings, topic: str) -> None:
    producer = AsyncProducer(kafka)
    try:
        sends = [
            producer.send(topic, f"value-{i}".encode(), key=f"key-{i}".encode())
            for i in range(RECORDS)
        ]
        await asyncio.gather(*sends)
    finally:
        producer.close()


def _consume_all(kafka: KafkaSettings, topic: str, group: str) -> Counter[str]:
    consumer = Consumer(consumer_config(kafka, group))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    keys: Counter[str] = Counter()
    deadline = time.monotonic() + 30
    try:
        while sum(keys.values()) < RECORDS and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            keys[(message.key() or b"").decode()] += 1
    finally:
        consumer.close()
    return keys


def test_topic_and_records_survive_a_broker_restart(
    second_broker: LocalBroker, unique_name: str
) -> None:
    kafka = second_broker.settings.kafka
    first_pid = second_broker.start(timeout=90)
    assert first_pid is not None, "another broker answered on 19092: not the one under test"
    assert second_broker.start() == first_pid  # idempotent: no second broker
    cluster_id = (second_broker.log_dir / "meta.properties").read_text()

    admin = create_admin(kafka)
    for future in admin.create_topics([NewTopic(unique_name, PARTITIONS, 1)]).values():
        future.result(timeout=30)
    asyncio.run(_produce(kafka, unique_name))

    second_broker.stop()
    assert not second_broker.is_running()
    assert not port_in_use(kafka.host, kafka.port)

    second_pid = second_broker.start(timeout=90)
    assert second_pid is not None and second_pid != first_pid
    assert (second_broker.log_dir / "meta.properties").read_text() == cluster_id

    metadata = create_admin(kafka).list_topics(unique_name, timeout=10)
    assert len(metadata.topics[unique_name].partitions) == PARTITIONS
    keys = _consume_all(kafka, unique_name, unique_name)
    assert keys == Counter({f"key-{i}": 1 for i in range(RECORDS)})


def test_a_port_taken_by_something_else_is_a_clear_error(
    tmp_path: Path, settings: Settings
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        kafka = KafkaSettings(bootstrap=f"127.0.0.1:{port}", controller_port=19393, heap="384m")
        broker = LocalBroker(
            Settings(data_dir=tmp_path, kafka=kafka), cache_dir=settings.data_dir / "cache"
        )
        with pytest.raises(ConfigurationError, match=f"port 127.0.0.1:{port} is taken"):
            broker.start(timeout=30)
    assert not broker.pid_path.exists()


def test_a_broker_that_dies_while_starting_shows_its_log(
    tmp_path: Path, settings: Settings
) -> None:
    # A heap the JVM refuses: the process exits at once, and the error carries the reason.
    kafka = KafkaSettings(bootstrap="127.0.0.1:19492", controller_port=19493, heap="1k")
    broker = LocalBroker(
        Settings(data_dir=tmp_path, kafka=kafka), cache_dir=settings.data_dir / "cache"
    )
    with pytest.raises(ConfigurationError, match=r"exited while starting(.|\n)*heap"):
        broker.start(timeout=30)
    assert not broker.is_running()
