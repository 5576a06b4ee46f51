"""Permanent produce errors on the real broker: the record goes to its dead letter with why.

Before, any refused hand-off was retried forever (``_route_until_durable``), so one record too
large for its retry tier — or a tier topic that does not exist — stopped its partition for
good. Now only retriable broker errors are retried.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import NewTopic

from streams.road.pipeline import Outcome, Pipeline, process
from streams.road.record import RoadRecord
from streams.road.router import FailureRouter
from streams.road.tiers import Hop
from synapseops.errors import TargetUnavailable
from synapseops.kafka import AsyncProducer, create_admin
from synapseops.settings import Settings
from tests.integration.road.test_road_flow import read_all
from topics.registry import PipelineSpec

pytestmark = pytest.mark.timeout(90)

TIER_LIMIT = 2_000  # bytes the (deliberately small) first tier takes


@pytest.fixture
def small_tier(
    kafka_bootstrap: str, settings: Settings, unique_name: str
) -> Iterator[PipelineSpec]:
    """A pipeline whose first tier refuses records above 2 kB; its second tier is missing."""
    spec = PipelineSpec(
        name=f"road-{unique_name}", inputs=(f"road-{unique_name}.in",), retry_delays=(1.0, 2.0)
    )
    small = {"max.message.bytes": str(TIER_LIMIT)}
    topics = [
        NewTopic(spec.retry_topic(0), 6, 1, config=small),
        NewTopic(spec.dlq_topic, 6, 1),
    ]
    admin = create_admin(settings.kafka)
    for future in admin.create_topics(topics).values():
        future.result(timeout=15)
    yield spec
    for future in admin.delete_topics([t.topic for t in topics]).values():
        future.result(timeout=15)


def _fail_through(spec: PipelineSpec, settings: Settings, record: RoadRecord) -> Outcome | Hop:
    async def handler(record: RoadRecord) -> Outcome:
        raise TargetUnavailable("erp answered 503", status=503)

    async def run() -> Outcome | Hop:
        producer = AsyncProducer(settings.kafka)
        pipeline = Pipeline(name=spec.name, spec=spec, handlers={"road": handler}, jitter=0.0)
        try:
            # Today's code never returns here; the bound turns that into a failure.
            return await asyncio.wait_for(process(pipeline, record, FailureRouter(producer)), 30)
        finally:
            await asyncio.to_thread(producer.close)

    return asyncio.run(run())


def test_a_record_too_large_for_its_tier_is_dead_lettered_with_the_reason(
    small_tier: PipelineSpec, settings: Settings
) -> None:
    value = os.urandom(TIER_LIMIT * 2)  # random: lz4 cannot shrink it under the limit
    record = RoadRecord(small_tier.inputs[0], 3, 41, None, b"acct-1", value, [])
    hop = _fail_through(small_tier, settings, record)
    assert isinstance(hop, Hop) and hop.dead
    [dead] = read_all(settings.kafka, small_tier.dlq_topic, 1, 10)
    assert dead.value == value and dead.key == b"acct-1"
    history = dead.history
    assert (history.error_kind, history.error_class) == ("fatal", "KafkaRejected")
    assert history.error_message is not None and "too large" in history.error_message
    assert "TargetUnavailable: erp answered 503" in history.error_message
    assert (history.original_topic, history.original_offset) == (small_tier.inputs[0], 41)


def test_a_retry_tier_that_does_not_exist_is_a_dead_letter_not_a_stall(
    small_tier: PipelineSpec, settings: Settings
) -> None:
    # The record already used tier 1: its next hop is tier 2, which was never created.
    record = RoadRecord(
        small_tier.inputs[0],
        0,
        7,
        None,
        b"acct-2",
        b'{"id": 2}',
        [("synapseops-attempt", b"1"), ("synapseops-retries", b"1")],
    )
    hop = _fail_through(small_tier, settings, record)
    assert isinstance(hop, Hop) and hop.dead
    [dead] = read_all(settings.kafka, small_tier.dlq_topic, 1, 10)
    assert dead.history.error_class == "KafkaRejected"
    assert dead.history.error_message is not None
    assert "Unknown topic or partition" in dead.history.error_message
    assert dead.history.attempt == 2
