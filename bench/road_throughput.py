"""Road-only throughput: records/s through a trivial pipeline with the whole road, one worker.

A throwaway 6-partition topic is filled with N records (~1 KB) first; then a worker process
runs one Faust app with one pipeline on it whose handler does nothing (``Outcome("done")``),
so what is measured is the road itself: Faust's consumer, the agent, ``process_batch``, acks
and commits. Rows:

- ``batch``: the road as the worker runs it (:func:`streams.road.agent.attach_pipeline`:
  an actor per partition, ``noack_take`` batches of ``SYNAPSEOPS_ROAD_BATCH_SIZE``);
- ``per-record``: the agent as it was before micro-batches (one actor for all partitions,
  ``stream.events()``, :func:`~streams.road.pipeline.process` per record, acked one by one);
- ``... + N ms wait``: the same with a handler that waits N ms per call (a database round
  trip): per record on the per-record agent, per batch through a batch handler.

records/s spans from the first commit the group made to the commit that covered the last
record (the group join and imports are nobody's cost); CPU is the worker process's user+sys
over the same span (``/proc``). Nothing is asserted.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

from synapseops.kafka import AsyncProducer, Outgoing, consumer_config, create_admin
from synapseops.settings import KafkaSettings, Settings

RECORDS = int(os.environ.get("SYNAPSEOPS_BENCH_ROAD_RECORDS", "20000"))
MODES = os.environ.get(
    "SYNAPSEOPS_BENCH_ROAD_MODES", "per-record,batch,per-record+wait,batch+wait"
).split(",")
# The "+wait" rows: the handler awaits this long per call, as a database round trip would —
# per record on the per-record agent, per batch with a batch handler.
WAIT_MS = float(os.environ.get("SYNAPSEOPS_BENCH_ROAD_WAIT_MS", "2"))
PARTITIONS = 6
TICK = os.sysconf("SC_CLK_TCK")


def _child(bootstrap: str, topic: str, group: str, mode: str) -> None:
    """The worker process of one row (``python -m bench.road_throughput child ...``)."""
    import faust

    from streams.app import create_app
    from streams.road.agent import attach_pipeline
    from streams.road.pipeline import Outcome, Pipeline, process
    from streams.road.record import RoadRecord
    from streams.road.router import FailureRouter
    from synapseops.settings import WorkerSettings
    from topics.registry import PipelineSpec

    wait_s = WAIT_MS / 1000 if mode.endswith("+wait") else 0.0

    async def trivial(record: RoadRecord) -> Outcome:
        if wait_s:
            await asyncio.sleep(wait_s)  # one round trip per record
        return Outcome("done")

    async def trivial_batch(records: Sequence[RoadRecord]) -> list[Outcome]:
        if wait_s:
            await asyncio.sleep(wait_s)  # one round trip per batch (a set-based write)
        return [Outcome("done")] * len(records)

    settings = Settings(
        kafka=KafkaSettings(bootstrap=bootstrap), worker=WorkerSettings(group_id=group)
    )
    spec = PipelineSpec(name=f"bench-{group}", inputs=(topic,), retry_delays=(1.0,))
    pipeline = Pipeline(
        name=spec.name,
        spec=spec,
        handlers={"bench": trivial},
        input_kinds={topic: ("bench",)},
        batch_handlers={"bench": trivial_batch} if mode.startswith("batch") else {},
    )
    router = FailureRouter(AsyncProducer(settings.kafka))
    app = create_app(settings)
    if mode.startswith("batch"):
        attach_pipeline(app, pipeline, router, settings.road)
    else:
        source = app.topic(topic, key_type=bytes, value_type=bytes, value_serializer="raw")

        async def per_record(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                await process(pipeline, RoadRecord.from_faust(event), router)

        app.agent(source, name="road.per-record", concurrency=1)(per_record)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, override_logging=False)
    worker.spinner = None
    worker.execute_from_commandline()


def _committed(consumer: Consumer, topic: str) -> int:
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    try:
        found = consumer.committed(tps, timeout=10)
    except KafkaException:
        return 0  # the group's coordinator is not there yet (a new group)
    return sum(max(tp.offset, 0) for tp in found)


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _row(kafka: KafkaSettings, topic: str, mode: str) -> tuple[float, float]:
    group = f"bench-road-{mode}-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "bench.road_throughput", "child", kafka.bootstrap]
    process = subprocess.Popen(
        [*command, topic, group, mode], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    watcher = Consumer(consumer_config(kafka, group))
    try:
        start: tuple[float, int, float] | None = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            done = _committed(watcher, topic)
            if done and start is None:
                start = (time.monotonic(), done, _cpu_s(process.pid))
            if done >= RECORDS and start is not None:
                span = max(time.monotonic() - start[0], 1e-9)
                cpu = _cpu_s(process.pid) - start[2]
                return (done - start[1]) / span, cpu / max(done - start[1], 1) * 1e6
            time.sleep(0.1)
        raise TimeoutError(f"{mode}: the group never committed all {RECORDS} records")
    finally:
        watcher.close()
        process.terminate()
        process.wait(timeout=60)


def run() -> None:
    kafka = Settings().kafka
    topic = f"bench-road-{uuid.uuid4().hex[:8]}"
    admin = create_admin(kafka)
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(timeout=30)
    try:
        asyncio.run(_fill(kafka, topic))
        cores = os.cpu_count()
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        sys.stdout.write(
            f"road only: {RECORDS:,} records (~1 KB), {PARTITIONS} partitions, trivial handler, "
            f"1 worker, {cores} cores shared (load average {load})\n"
        )
        for mode in MODES:
            rate, cpu_us = _row(kafka, topic, mode)
            label = mode.replace("+wait", f" + {WAIT_MS:g} ms wait")
            sys.stdout.write(f"  {label:<28} {rate:9,.0f} records/s  {cpu_us:6.0f} µs CPU/record\n")
            sys.stdout.flush()
    finally:
        for future in admin.delete_topics([topic]).values():
            future.result(timeout=30)


async def _fill(kafka: KafkaSettings, topic: str) -> None:
    producer = AsyncProducer(kafka)
    value = b"x" * 1000
    try:
        for start in range(0, RECORDS, 5000):
            chunk = range(start, min(start + 5000, RECORDS))
            await producer.send_many([Outgoing(topic, value, key=b"k%d" % n) for n in chunk])
    finally:
        producer.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        _child(*sys.argv[2:6])
    else:
        run()
