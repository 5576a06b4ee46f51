"""The reliability road on the real broker: tiers held on time, poison dead at once, 429 honoured.

Each test declares its own pipeline (unique topic names, tiers 1s/2s/3s, jitter 0.2, 6
partitions), runs the pipeline's real :class:`TierConsumer` tasks plus a small main-input loop
(a confluent consumer that calls :func:`process` and commits after it), and counts what arrived
where by key. Stated slack: a retry starts no earlier than its not-before and at most
``SLACK_S`` after the jittered tier delay.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import NewTopic
from prometheus_client import REGISTRY

from streams.road import headers as rh
from streams.road.pipeline import Outcome, Pipeline, process
from streams.road.record import RoadRecord
from streams.road.router import FailureRouter
from streams.road.tier_consumer import TierConsumer, tier_consumers
from synapseops.errors import RateLimited, SchemaInvalid, TargetUnavailable, Undecodable
from synapseops.kafka import AsyncProducer, consumer_config, create_admin
from synapseops.settings import KafkaSettings, Settings
from tests.fixtures import SAMPLES
from topics.registry import PipelineSpec

pytestmark = pytest.mark.timeout(60)

DELAYS = (1.0, 2.0, 3.0)
JITTER = 0.2
SLACK_S = 1.5
PARTITIONS = 6
FIXTURE = SAMPLES / "stripe/events/payment_intent.succeeded.json"
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

Handler = Callable[[RoadRecord], Awaitable[Outcome]]


@pytest.fixture
def spec(kafka_bootstrap: str, settings: Settings, unique_name: str) -> Iterator[PipelineSpec]:
    pipeline = PipelineSpec(
        name=f"road-{unique_name}", inputs=(f"road-{unique_name}.in",), retry_delays=DELAYS
    )
    names = [*pipeline.inputs, *(topic.name for topic in pipeline.derived_topics())]
    admin = create_admin(settings.kafka)
    for future in admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names]).values():
        future.result(timeout=15)
    yield pipeline
    for future in admin.delete_topics(names).values():
        future.result(timeout=15)


class Road:
    """The pipeline's tier consumers plus a main-input loop, started and stopped together."""

    def __init__(self, spec: PipelineSpec, handler: Handler, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.spec = spec
        self.group = f"{spec.name}-worker"
        self.pipeline = Pipeline(
            name=spec.name, spec=spec, handlers={"road": handler}, jitter=JITTER
        )
        self.producer = AsyncProducer(kafka)
        self.router = FailureRouter(self.producer)
        self.tiers: list[TierConsumer] = tier_consumers(
            self.pipeline, self.router, kafka, self.group
        )
        self._main_assigned = asyncio.Event()
        self._stop = asyncio.Event()
        self._main: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Road:
        for tier in self.tiers:
            tier.start()
        self._main = asyncio.create_task(self._main_loop())
        waits = [self._main_assigned.wait(), *(tier.assigned.wait() for tier in self.tiers)]
        await asyncio.wait_for(asyncio.gather(*waits), timeout=20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*(tier.stop() for tier in self.tiers))
        if self._main is not None:
            await asyncio.wait_for(self._main, timeout=15)
        self.producer.close()

    async def _main_loop(self) -> None:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1)

        def call(fn: Callable[..., Any], *args: Any, **kw: Any) -> Awaitable[Any]:
            return loop.run_in_executor(executor, lambda: fn(*args, **kw))

        consumer = await call(Consumer, consumer_config(self.kafka, self.group))
        assigned = lambda *_: loop.call_soon_threadsafe(self._main_assigned.set)  # noqa: E731
        await call(consumer.subscribe, list(self.spec.inputs), on_assign=assigned)
        try:
            while not self._stop.is_set():
                message = await call(consumer.poll, 0.2)
                if message is None or message.error() is not None:
                    continue
                record = RoadRecord.from_confluent(message)
                await process(self.pipeline, record, self.router)
                offset = TopicPartition(record.topic, record.partition, record.offset + 1)
                await call(consumer.commit, offsets=[offset], asynchronous=False)
        finally:
            await call(consumer.close)
            executor.shutdown()

    async def send(self, key: str, value: bytes) -> tuple[int, int]:
        headers = [("traceparent", TRACEPARENT), ("synapseops-event-id", f"evt_{key}".encode())]
        return await self.producer.send(
            self.spec.inputs[0], value, key=key.encode(), headers=headers
        )


def read_all(kafka: KafkaSettings, topic: str, want: int, deadline_s: float) -> list[RoadRecord]:
    """Every record of ``topic`` from the beginning, until ``want`` arrived or the deadline."""
    consumer = Consumer(consumer_config(kafka, f"reader-{topic}-{time.time_ns()}"))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    found: list[RoadRecord] = []
    end = time.monotonic() + deadline_s
    try:
        while len(found) < want and time.monotonic() < end:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                found.append(RoadRecord.from_confluent(message))
        # A short extra look: more than ``want`` would be a duplicate.
        extra_end = time.monotonic() + 0.5
        while time.monotonic() < extra_end:
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                found.append(RoadRecord.from_confluent(message))
    finally:
        consumer.close()
    return found


def end_offsets(kafka: KafkaSettings, topic: str) -> int:
    consumer = Consumer(consumer_config(kafka, f"watermarks-{time.time_ns()}"))
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        )
    finally:
        consumer.close()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_failing_target_is_tried_1_plus_3_times_on_time_then_dead_while_others_flow(
    spec: PipelineSpec, settings: Settings
) -> None:
    payload = FIXTURE.read_bytes()
    tries: dict[str, list[tuple[float, RoadRecord]]] = defaultdict(list)

    async def handler(record: RoadRecord) -> Outcome:
        key = (record.key or b"").decode()
        tries[key].append((time.time(), record))
        if key.startswith("bad"):
            raise TargetUnavailable("erp answered 503", status=503)
        return Outcome("done")

    bad = [f"bad-{wave}-{i}" for wave in "ab" for i in range(6)]
    coordinates: dict[str, tuple[int, int]] = {}
    good_sent: dict[str, float] = {}

    async def scenario() -> list[RoadRecord]:
        async with Road(spec, handler, settings.kafka) as road:
            for key in bad[:6]:
                coordinates[key] = await road.send(key, payload)
            await asyncio.sleep(0.7)
            for key in bad[6:]:
                coordinates[key] = await road.send(key, payload)
            # Healthy records all along, while the bad ones sit in the tiers.
            dead: list[RoadRecord] = []
            for i in range(200):
                key = f"good-{i}"
                good_sent[key] = time.time()
                await road.send(key, payload)
                await asyncio.sleep(0.25)
                if sum(len(tries[k]) for k in bad) == 4 * len(bad):
                    break
            dead = await asyncio.to_thread(read_all, settings.kafka, spec.dlq_topic, 12, 8)
            return dead

    before_retries = metric("synapseops_road_retries_total", pipeline=spec.name, tier="3")
    dead = asyncio.run(scenario())

    tier_topics = [spec.inputs[0], *spec.retry_topics]
    lags: list[float] = []
    for key in bad:
        seen = tries[key]
        assert [record.topic for _, record in seen] == tier_topics, key
        assert [record.history.attempt for _, record in seen] == [0, 1, 2, 3]
        for step in (1, 2, 3):
            started, record = seen[step]
            held = started - seen[step - 1][0]
            delay = DELAYS[step - 1]
            not_before = record.history.not_before_ms
            assert not_before is not None and started * 1000 >= not_before - 1, key
            lags.append(started - not_before / 1000)
            assert delay * (1 - JITTER) - 0.05 <= held <= delay * (1 + JITTER) + SLACK_S, (
                key,
                step,
                held,
            )

    # How late a due record started (the tier consumer's own error, jitter aside).
    print(f"hold lag: max {max(lags):.3f}s, mean {sum(lags) / len(lags):.3f}s")
    assert max(lags) <= SLACK_S

    assert sorted((r.key or b"").decode() for r in dead) == sorted(bad)  # once each
    for record in dead:
        key = (record.key or b"").decode()
        history = record.history
        assert record.value == payload
        assert (history.attempt, history.retries) == (4, 3)
        assert history.original_topic == spec.inputs[0]
        assert (history.original_partition, history.original_offset) == coordinates[key]
        assert history.original_timestamp_ms is not None
        assert history.pipeline == spec.name
        assert (history.error_kind, history.error_class) == ("retryable", "TargetUnavailable")
        assert history.error_message == "erp answered 503"
        assert history.error_trace and "TargetUnavailable" in history.error_trace
        first_failed = history.first_failed_at_ms
        assert first_failed == tries[key][1][1].history.first_failed_at_ms
        assert first_failed is not None and -1 <= first_failed - tries[key][0][0] * 1000 < 1000
        assert (history.last_failed_at_ms or 0) - first_failed > sum(DELAYS) * (1 - JITTER)
        assert record.header("traceparent") == TRACEPARENT
        assert record.header("synapseops-event-id") == f"evt_{key}".encode()
        assert record.header(rh.NOT_BEFORE) is None

    assert len(good_sent) >= 20
    for key, sent in good_sent.items():
        assert len(tries[key]) == 1, key
        assert tries[key][0][0] - sent < 1.0, (key, tries[key][0][0] - sent)
    after = metric("synapseops_road_retries_total", pipeline=spec.name, tier="3")
    assert after - before_retries == len(bad)


def test_poison_records_are_dead_at_once_and_the_partition_moves_on(
    spec: PipelineSpec, settings: Settings
) -> None:
    handled: list[str] = []

    async def handler(record: RoadRecord) -> Outcome:
        try:
            body = json.loads(record.value or b"")
        except (ValueError, UnicodeDecodeError) as exc:
            raise Undecodable(f"not JSON at {record.coordinates}") from exc
        if not isinstance(body, dict) or "id" not in body:
            raise SchemaInvalid("payment event without id")
        handled.append(body["id"])
        return Outcome("done")

    poison = [b"\xff\xfe<html>502 Bad Gateway", b'{"amount": 5}']
    healthy = [json.dumps({"id": f"ok-{i}"}).encode() for i in range(4)]

    async def scenario() -> list[RoadRecord]:
        async with Road(spec, handler, settings.kafka) as road:
            # One key, one partition: the poison sits in front of the healthy records.
            for value in [poison[0], healthy[0], poison[1], *healthy[1:]]:
                await road.send("acct-1", value)
            for _ in range(50):
                if len(handled) == len(healthy):
                    break
                await asyncio.sleep(0.1)
            return await asyncio.to_thread(read_all, settings.kafka, spec.dlq_topic, 2, 8)

    dead = asyncio.run(scenario())
    assert handled == [f"ok-{i}" for i in range(4)]
    assert sorted(r.value or b"" for r in dead) == sorted(poison)
    by_class = {r.history.error_class: r for r in dead}
    assert set(by_class) == {"Undecodable", "SchemaInvalid"}
    for record in dead:
        assert (record.history.attempt, record.history.error_kind) == (1, "fatal")
        assert record.history.original_topic == spec.inputs[0]
    assert by_class["Undecodable"].history.original_offset == 0
    assert by_class["SchemaInvalid"].history.original_offset == 2
    assert sum(end_offsets(settings.kafka, topic) for topic in spec.retry_topics) == 0

    # The main input's commits reached the end of the partition: nothing is stuck behind poison.
    checker = Consumer(consumer_config(settings.kafka, f"{spec.name}-worker"))
    try:
        committed = checker.committed(
            [TopicPartition(spec.inputs[0], p) for p in range(PARTITIONS)], timeout=10
        )
    finally:
        checker.close()
    assert max(tp.offset for tp in committed) == len(poison) + len(healthy)


def test_rate_limited_record_waits_for_retry_after_not_just_the_tier(
    spec: PipelineSpec, settings: Settings
) -> None:
    tries: dict[str, list[tuple[float, RoadRecord]]] = defaultdict(list)

    async def handler(record: RoadRecord) -> Outcome:
        key = (record.key or b"").decode()
        tries[key].append((time.time(), record))
        if len(tries[key]) == 1:
            retry_after = 2.5 if key == "limited" else None
            raise RateLimited("429 Too Many Requests", retry_after=retry_after)
        return Outcome("done")

    async def scenario() -> None:
        async with Road(spec, handler, settings.kafka) as road:
            await road.send("limited", b'{"id": "1"}')
            await road.send("plain", b'{"id": "2"}')
            for _ in range(80):
                if len(tries["limited"]) == 2 and len(tries["plain"]) == 2:
                    break
                await asyncio.sleep(0.1)

    asyncio.run(scenario())
    # 2.5 s is longer than tier 1's delay: it waits on the tier whose delay covers it (3 s),
    # never pausing tier 1's partition for longer than tier 1 holds.
    for key, lowest, highest, tier in (("limited", 2.5, 2.5, 2), ("plain", 0.8, 1.2, 0)):
        first, second = tries[key]
        held = second[0] - first[0]
        assert second[1].topic == spec.retry_topic(tier)
        assert second[1].history.error_class == "RateLimited"
        assert lowest - 0.05 <= held <= highest + SLACK_S, (key, held)
    assert end_offsets(settings.kafka, spec.dlq_topic) == 0
