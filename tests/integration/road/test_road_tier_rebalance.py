"""Tier consumers scale out and stop mid-hold: every held record still runs once, never early.

Two :class:`TierConsumer` of one tier share the pipeline's tier group. The first holds every
partition's head; the second joins (a cooperative rebalance moves partitions, with their held
heads, to it); then the first stops while records are still held. Counted by key: each record
is handled exactly once, by whichever consumer owned its partition, and never before its
not-before.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import NewTopic

from streams.road import headers as rh
from streams.road.pipeline import Outcome, Pipeline
from streams.road.record import RoadRecord
from streams.road.router import FailureRouter
from streams.road.tier_consumer import TierConsumer
from synapseops.kafka import AsyncProducer, create_admin
from synapseops.settings import Settings
from topics.registry import PipelineSpec

pytestmark = pytest.mark.timeout(60)

PARTITIONS = 6
RECORDS = 24
HOLD_S = 2.0


@pytest.fixture
def spec(kafka_bootstrap: str, settings: Settings, unique_name: str) -> Iterator[PipelineSpec]:
    pipeline = PipelineSpec(
        name=f"road-{unique_name}", inputs=(f"road-{unique_name}.in",), retry_delays=(HOLD_S,)
    )
    admin = create_admin(settings.kafka)
    topic = pipeline.retry_topic(0)
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(timeout=15)
    yield pipeline
    for future in admin.delete_topics([topic]).values():
        future.result(timeout=15)


async def until(condition: Callable[[], bool], within_s: float) -> None:
    for _ in range(int(within_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)


def test_held_records_survive_scale_out_and_a_stop_exactly_once(
    spec: PipelineSpec, settings: Settings
) -> None:
    handled: dict[str, list[tuple[str, float, int]]] = defaultdict(list)

    def pipeline_for(consumer: str) -> Pipeline:
        async def handler(record: RoadRecord) -> Outcome:
            not_before = record.history.not_before_ms or 0
            handled[(record.key or b"").decode()].append((consumer, time.time(), not_before))
            return Outcome("done")

        return Pipeline(name=spec.name, spec=spec, handlers={"road": handler})

    async def scenario() -> None:
        producer = AsyncProducer(settings.kafka)
        router = FailureRouter(producer)
        group = f"{spec.name}-worker"
        first = TierConsumer(pipeline_for("first"), 0, router, settings.kafka, group)
        second = TierConsumer(pipeline_for("second"), 0, router, settings.kafka, group)
        start = time.time()
        for i in range(RECORDS):
            # Due times follow offsets within each partition, as on a real tier.
            not_before = int((start + HOLD_S + (i // PARTITIONS) * 0.4) * 1000)
            headers = [(rh.ATTEMPT, b"1"), (rh.RETRIES, b"1"), (rh.NOT_BEFORE, b"%d" % not_before)]
            await producer.send(
                spec.retry_topic(0),
                b"{}",
                key=f"k{i}".encode(),
                headers=headers,
                partition=i % PARTITIONS,
            )
        first.start()
        await asyncio.wait_for(first.assigned.wait(), 15)
        await asyncio.sleep(0.5)  # the first consumer now holds every partition's head
        second.start()
        await asyncio.wait_for(second.assigned.wait(), 15)
        await until(lambda: len(handled) >= RECORDS // 2, 15)
        await first.stop()  # mid-hold: its partitions move to the second consumer
        await until(lambda: len(handled) >= RECORDS, 15)
        await asyncio.sleep(1.0)  # a duplicate would show up now
        await second.stop()
        producer.close()

    asyncio.run(scenario())

    assert sorted(handled) == sorted(f"k{i}" for i in range(RECORDS))
    assert all(len(runs) == 1 for runs in handled.values()), handled
    assert {runs[0][0] for runs in handled.values()} == {"first", "second"}
    for key, [(_, started, not_before)] in handled.items():
        assert started * 1000 >= not_before - 1, key
