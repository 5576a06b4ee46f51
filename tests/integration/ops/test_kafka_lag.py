"""Consumer lag on the API's /metrics is the broker's: committed and end offsets, read live.

A real API app (served over HTTP) on the session broker: a topic of its own with records on
two partitions, groups that commit where the test says; the scrape must show exactly the
lag the offsets make, for the watched groups only, follow a new commit, and — with the
broker unreachable — say the reading failed instead of showing any lag.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from uuid import uuid4

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from api.server import serving_in_thread
from synapseops.kafka import consumer_config
from synapseops.settings import KafkaSettings, ObservabilitySettings, Settings
from tests.integration.worker_process import free_port

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("synapseops_kafka_"):
            for sample in family.samples:
                found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = (
                    sample.value
                )
    return found


def lag_of(found: dict[str, dict[tuple[tuple[str, str], ...], float]], topic: str) -> dict:
    return {
        (labels["group"], int(labels["partition"])): value
        for key, value in found.get("synapseops_kafka_consumer_lag", {}).items()
        for labels in [dict(key)]
        if labels["topic"] == topic
    }


def commit(kafka: KafkaSettings, group: str, offsets: list[TopicPartition]) -> None:
    consumer = Consumer(consumer_config(kafka, group))
    consumer.commit(offsets=offsets, asynchronous=False)
    consumer.close()


@pytest.fixture
def topic(settings: Settings, kafka_bootstrap: str) -> Iterator[str]:
    name = f"t-lag-{uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(name, 2, 1)])[name].result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for n in range(10):
        producer.produce(name, b"x", partition=n % 2)  # 5 records on each partition
    assert producer.flush(30) == 0
    yield name
    admin.delete_topics([name])[name].result(30)


def test_lag_per_group_and_partition_as_the_broker_has_it(
    settings: Settings, kafka_bootstrap: str, database_url: str, topic: str
) -> None:
    prefix = f"t-lagw-{uuid4().hex[:6]}"
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    commit(kafka, prefix, [TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 5)])
    commit(kafka, f"{prefix}.tiers", [TopicPartition(topic, 0, 0)])
    commit(kafka, f"{prefix}x", [TopicPartition(topic, 0, 1)])  # not under the prefix
    served = settings.model_copy(
        update={"observability": ObservabilitySettings(lag_groups=prefix, lag_cache_s=0)}
    )
    with serving_in_thread(create_app(served)) as url:
        found = scrape(url)
        assert lag_of(found, topic) == {(prefix, 0): 3, (prefix, 1): 0, (f"{prefix}.tiers", 0): 5}
        ends = found["synapseops_kafka_partition_end_offset"]
        assert ends[(("partition", "0"), ("topic", topic))] == 5
        assert found["synapseops_kafka_lag_read_ok"][()] == 1
        assert found["synapseops_kafka_brokers"][()] >= 1
        assert found["synapseops_kafka_partitions_offline"][()] == 0
        # The group moves on: the next scrape reads the new commit.
        commit(kafka, prefix, [TopicPartition(topic, 0, 5)])
        assert lag_of(scrape(url), topic)[(prefix, 0)] == 0


def test_an_unreachable_broker_reads_as_failed_not_as_no_lag(
    settings: Settings, database_url: str
) -> None:
    served = settings.model_copy(
        update={
            "kafka": KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}"),
            "observability": ObservabilitySettings(lag_cache_s=30),
        }
    )
    with serving_in_thread(create_app(served)) as url:
        started = time.monotonic()
        found = scrape(url)
        first_took = time.monotonic() - started
        assert found["synapseops_kafka_lag_read_ok"][()] == 0
        assert "synapseops_kafka_consumer_lag" not in found
        assert "synapseops_kafka_brokers" not in found
        # The failure is cached too: a second scrape does not wait on the broker again.
        started = time.monotonic()
        assert scrape(url)["synapseops_kafka_lag_read_ok"][()] == 0
        print(f"first scrape {first_took:.1f}s, second {time.monotonic() - started:.2f}s")
