"""A long ``Retry-After`` never stalls the records behind it, on a tier or in parking.

One key (so one partition on the input, every tier and the parking topic): a record told to
wait 8 s, then one told to wait 4 s, then one that failed with a plain 503. Before, the 8 s
one sat at the head of tier 1's partition with it paused, and both others waited behind it.
Now the long waits go to the parking topic (longer than every tier), whose consumer holds
several records per partition: each record runs when *it* is due, and the parking partition
is committed only up to the lowest unfinished record.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.road.pipeline import Outcome
from streams.road.record import RoadRecord
from synapseops.errors import RateLimited, TargetUnavailable
from synapseops.kafka import consumer_config
from synapseops.settings import Settings
from tests.integration.road.test_road_flow import SLACK_S, Road, end_offsets, spec
from topics.registry import PipelineSpec

__all__ = ["spec"]  # the fixture, shared with test_road_flow

pytestmark = pytest.mark.timeout(90)

WAITS = {"long": 8.0, "short": 4.0}


def test_a_long_retry_after_parks_without_blocking_the_records_behind_it(
    spec: PipelineSpec, settings: Settings
) -> None:
    tries: dict[str, list[tuple[float, RoadRecord]]] = defaultdict(list)

    async def handler(record: RoadRecord) -> Outcome:
        name = (record.value or b"").decode()
        tries[name].append((time.time(), record))
        if len(tries[name]) == 1:
            if name in WAITS:
                raise RateLimited("429 Too Many Requests", retry_after=WAITS[name])
            raise TargetUnavailable("erp answered 503", status=503)
        return Outcome("done")

    async def scenario() -> None:
        async with Road(spec, handler, settings.kafka) as road:
            for name in ("long", "short", "plain"):
                await road.send("acct-1", name.encode())
            for _ in range(200):
                if all(len(tries[n]) == 2 for n in ("long", "short", "plain")):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # the parking consumer commits after the last one

    asyncio.run(scenario())
    # Each ran when it was due, not when the record in front of it was.
    for name, lowest, highest in (("long", 8.0, 8.0), ("short", 4.0, 4.0), ("plain", 0.8, 1.2)):
        first, second = tries[name]
        held = second[0] - first[0]
        assert lowest - 0.05 <= held <= highest + SLACK_S, (name, held)
        assert second[1].history.not_before_ms is not None
        assert second[0] * 1000 >= second[1].history.not_before_ms - 1
    # The short wait ran before the long one although it sat behind it on one partition.
    assert tries["short"][1][0] < tries["long"][1][0]
    assert [tries[name][1][1].topic for name in ("long", "short", "plain")] == [
        spec.parking_topic,
        spec.parking_topic,
        spec.retry_topic(0),
    ]
    assert end_offsets(settings.kafka, spec.dlq_topic) == 0

    # Both parked records are done: the parking partition is committed past both.
    checker = Consumer(consumer_config(settings.kafka, f"{spec.name}-worker.{spec.name}.tiers"))
    try:
        partition = tries["long"][1][1].partition
        [committed] = checker.committed([TopicPartition(spec.parking_topic, partition)], timeout=10)
    finally:
        checker.close()
    assert committed.offset == 2
