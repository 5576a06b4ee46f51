"""The road's Faust agent (streams/road/agent.py) on Faust's in-memory test context: an actor
per partition, batches of the configured size in offset order, acked only once handled, and
a batch cut off by cancellation never acked (Faust's ``take_events`` would ack it)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import faust
import sqlalchemy

from streams.road.agent import attach_pipeline
from streams.road.pipeline import Outcome, Pipeline
from streams.road.record import RoadRecord
from streams.road.router import FailureRouter
from streams.worker import build_worker
from synapseops.settings import KafkaSettings, RoadSettings, Settings, WorkerSettings
from tests.unit.road.test_road_pipeline import RecordingProducer
from topics.registry import PipelineSpec

SPEC = PipelineSpec(name="p", inputs=("p.in",), retry_delays=(1.0,))


async def _one(record: RoadRecord) -> Outcome:
    return Outcome("done")


def _agent(batch: Any, size: int = 3) -> Any:
    pipeline = Pipeline(
        name="p",
        spec=SPEC,
        handlers={"e": _one},
        input_kinds={"p.in": ("e",)},
        batch_handlers={"e": batch},
    )
    app = faust.App("t-agent", broker="kafka://127.0.0.1:1", store="memory://")
    router = FailureRouter(RecordingProducer())  # type: ignore[arg-type]
    attach_pipeline(app, pipeline, router, RoadSettings(batch_size=size, batch_within_ms=50))
    return app.agents["road.p"]


def _put(batch: Any, count: int) -> list[Any]:
    """``count`` events through the agent; the agent is stopped 0.3 s after the last."""

    async def main() -> list[Any]:
        async with _agent(batch).test_context() as context:
            # wait=False: the intake takes events off the channel, not through the stream's
            # processors, which is where the test context would see them being processed.
            put = context.put
            events = [await put(key=b"k", value=b"v%d" % n, wait=False) for n in range(count)]
            await asyncio.sleep(0.3)
        return events

    return asyncio.run(main())


def test_records_come_in_batches_in_offset_order_and_are_acked_once_handled() -> None:
    seen: list[list[bytes | None]] = []

    async def batch(records: Sequence[RoadRecord]) -> list[Outcome]:
        seen.append([r.value for r in records])
        return [Outcome("done")] * len(records)

    events = _put(batch, 7)
    assert seen == [[b"v0", b"v1", b"v2"], [b"v3", b"v4", b"v5"], [b"v6"]]
    assert all(event.message.acked for event in events)


def test_a_batch_cut_off_by_cancellation_is_not_acked() -> None:
    async def batch(records: Sequence[RoadRecord]) -> list[Outcome]:
        if any(r.value == b"v4" for r in records):
            await asyncio.Event().wait()  # still handling when the actor is stopped
        return [Outcome("done")] * len(records)

    events = _put(batch, 6)
    # The first batch was handled and acked; the second never finished, so nothing of it is.
    assert [event.message.acked for event in events] == [True] * 3 + [False] * 3


def test_the_worker_runs_an_actor_per_partition() -> None:
    settings = Settings(
        kafka=KafkaSettings(bootstrap="127.0.0.1:19999"), worker=WorkerSettings(group_id="g")
    )
    engine = sqlalchemy.create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    worker = build_worker(settings, engine)
    agents = [agent for agent in worker.app.agents.values() if agent.name.startswith("road.")]
    assert agents and all(a.isolated_partitions and a.concurrency == 1 for a in agents)
    for service in worker.services:
        runtime = getattr(service, "runtime", None)
        if runtime is not None:
            runtime.producer.close(timeout=0)


def test_the_worker_runs_every_tier_and_the_parking_topic_of_each_pipeline() -> None:
    from streams.bootstrap import Runtime, load_services, road_tasks

    settings = Settings(
        kafka=KafkaSettings(bootstrap="127.0.0.1:19999"), worker=WorkerSettings(group_id="g")
    )
    engine = sqlalchemy.create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    runtime = Runtime.build(settings, engine)
    try:
        pipelines = load_services(runtime).pipelines
        names = {spec.name for spec in road_tasks(runtime, pipelines)}
        for pipeline in pipelines:
            tiers = [pipeline.spec.retry_topic(t) for t in range(len(pipeline.spec.retry_delays))]
            assert {f"tier:{topic}" for topic in [*tiers, pipeline.spec.parking_topic]} <= names
    finally:
        runtime.producer.close(timeout=0)


def test_an_event_from_before_a_rebalance_is_dropped_unacked() -> None:
    """An event of an older consumer generation is never handled and never acked: its
    partition is re-read from the committed offset. (Faust's stream acked such an event while
    skipping it, marking an offset done that nobody handled.)"""
    seen: list[bytes | None] = []

    async def batch(records: Sequence[RoadRecord]) -> list[Outcome]:
        seen.extend(r.value for r in records)
        return [Outcome("done")] * len(records)

    async def main() -> tuple[Any, Any]:
        async with _agent(batch).test_context() as context:
            channel = context.stream().channel
            message = context.to_message(b"k", b"stale", offset=0)
            message.generation_id = context.app.consumer_generation_id - 1
            stale = await channel.decode(message)
            await channel.put(stale)
            context.sent_offset = 1
            fresh = await context.put(key=b"k", value=b"fresh", wait=False)
            await asyncio.sleep(0.3)
        return stale, fresh

    stale, fresh = asyncio.run(main())
    assert seen == [b"fresh"]
    assert fresh.message.acked and not stale.message.acked


def test_an_intake_closed_takes_its_partition_channel_out_of_the_conductor() -> None:
    """A revoked partition's actor ends and closes its intake; the channel must leave Faust's
    conductor, or the next assignment finds a channel for a partition the worker no longer
    has and Faust crashes (``Conductor._update_tp_index`` asserts it). The agent closes it in
    a ``finally`` (test_road_batches' revoke test is where a worker crashed without it)."""
    from faust.types import TP

    from streams.road.intake import PartitionIntake

    async def main() -> tuple[bool, bool]:
        app = faust.App("t-intake", broker="kafka://127.0.0.1:1", store="memory://")
        topic = app.topic("p.in", key_type=bytes, value_type=bytes)
        stream = app.stream(topic.clone(active_partitions={TP("p.in", 0)}))
        intake = PartitionIntake(app, stream, size=10, within_s=0.01)
        registered = stream.channel in app.topics
        intake.close()
        return registered, stream.channel in app.topics

    assert asyncio.run(main()) == (True, False)


def test_an_intake_ends_when_its_channel_stops() -> None:
    """Faust throws StopAsyncIteration into a channel whose stream stops: the intake ends (it
    is caught around ``get`` and ``get_nowait`` alike), not a RuntimeError out of the
    generator that Faust would log as a crashed actor."""
    from faust.types import TP

    from streams.road.intake import PartitionIntake

    async def main() -> list[Any]:
        app = faust.App("t-intake-stop", broker="kafka://127.0.0.1:1", store="memory://")
        topic = app.topic("p.in", key_type=bytes, value_type=bytes)
        stream = app.stream(topic.clone(active_partitions={TP("p.in", 0)}))
        intake = PartitionIntake(app, stream, size=10, within_s=0.01)
        cast_channel: Any = stream.channel
        await cast_channel.throw(StopAsyncIteration())
        return [batch async for batch in intake.batches()]

    assert asyncio.run(asyncio.wait_for(main(), 10)) == []
