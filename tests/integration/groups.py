"""Where a test's worker begins: each of its consumer groups committed at its topics' ends.

The tests share one broker, so a topic holds what earlier tests left on it, and a fresh group
reads a topic from its start (``auto.offset.reset`` is ``earliest`` everywhere, on purpose).
A test that starts a worker with a new group id first commits *every* group that worker
consumes with — its agents' group, each pipeline's tiers' group, the dead-letter store's —
at the current ends, so the worker handles only what the test produces. Only the agents'
group is not enough: a tiers' group left fresh reads other tests' retries, and a count of
"handled again" after a crash then counts them too (session 13, docs/NEXT.md).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from uuid import uuid4

from confluent_kafka import Consumer, KafkaException, TopicPartition

from synapseops.kafka import consumer_config
from synapseops.settings import KafkaSettings, RetrySettings, Settings
from topics.admin import apply_topics
from topics.registry import platform_registry

TIERS = "1s,2s,3s"  # the tests' retry tiers (tests.integration.worker_process's default)


def worker_group_topics(group: str, tiers: str = TIERS) -> dict[str, list[str]]:
    """Each consumer group a worker of ``group`` commits with, and the topics it reads
    (streams/bootstrap.py): agents the inputs, tiers their pipeline's tiers and parking, the
    dead-letter store every dead-letter topic."""
    pipelines = platform_registry(RetrySettings(tiers=tiers).delays).pipelines.values()
    groups = {
        group: sorted({topic for spec in pipelines for topic in spec.inputs}),
        f"{group}.dead-letters": sorted(spec.dlq_topic for spec in pipelines),
    }
    for spec in pipelines:
        groups[f"{group}.{spec.name}.tiers"] = [*spec.retry_topics, spec.parking_topic]
    return groups


def start_groups_at_end(kafka: KafkaSettings, group: str, tiers: str = TIERS) -> None:
    """A new worker of ``group`` with ``tiers`` begins at its topics' ends: what is there is
    other tests'. The platform's topics with these tiers are applied first — a test that runs
    before any worker with them would otherwise find them missing (a worker applies its own)."""
    apply_topics(Settings(kafka=kafka, retry=RetrySettings(tiers=tiers)))
    commit_at_end(kafka, worker_group_topics(group, tiers))


def commit_at_end(kafka: KafkaSettings, groups: Mapping[str, Sequence[str]]) -> None:
    """Commit each group's topics at their ends before its first member runs (a group only
    commits on what it reads)."""
    ends = topic_ends(kafka, {topic for topics in groups.values() for topic in topics})
    for group, topics in groups.items():
        consumer = Consumer(consumer_config(kafka, group))
        consumer.commit(offsets=[tp for topic in topics for tp in ends[topic]], asynchronous=False)
        consumer.close()


def topic_ends(kafka: KafkaSettings, topics: set[str]) -> dict[str, list[TopicPartition]]:
    """Every partition of ``topics`` at its end offset; waits (30 s) for a topic created a
    moment ago to show in the metadata and have a leader."""
    probe = Consumer(consumer_config(kafka, f"probe-{uuid4().hex[:8]}"))
    try:
        existing = probe.list_topics(timeout=10).topics
        deadline = time.monotonic() + 30
        while any(topic not in existing for topic in topics) and time.monotonic() < deadline:
            time.sleep(0.5)
            existing = probe.list_topics(timeout=10).topics
        return {
            topic: [
                TopicPartition(topic, partition, _end(probe, topic, partition))
                for partition in existing[topic].partitions
            ]
            for topic in topics
        }
    finally:
        probe.close()


def _end(probe: Consumer, topic: str, partition: int) -> int:
    deadline = time.monotonic() + 30  # a topic created a moment ago may have no leader yet
    while True:
        try:
            return int(probe.get_watermark_offsets(TopicPartition(topic, partition), 10)[1])
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
