"""The dead-letter store and replay on the real broker and a fresh PostgreSQL database.

Each test declares its own pipeline (unique name, so unique ``.retry.*``/``.dlq`` topics),
its own trigger topic and consumer groups. The module's database is created fresh and
migrated with ``sinks.migrate.upgrade``.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr
from sqlalchemy import select, update

from schemas.serde import AvroSerde
from schemas.store import AVRO_DIR, ConfluentRegistryStore, LocalSchemaStore, register_schemas
from sinks.dead_letters.replay import DeadLetterFilter, DeadLetterReplay
from sinks.dead_letters.store import DeadRecord, to_row, trigger_record
from sinks.dead_letters.tables import dead_letters, replays
from streams.dead_letters import DeadLetterStore
from streams.health import HealthServer
from streams.road.headers import FailureHistory
from streams.supervision import Supervisor, TaskSpec
from streams.triggers import TriggerEncoder
from synapseops.kafka import AsyncProducer, consumer_config
from synapseops.settings import (
    DatabaseSettings,
    SchemaRegistrySettings,
    Settings,
    SupervisionSettings,
)
from tests.integration.databases import fresh_database
from tests.integration.schema_registry import serving_registry
from tests.integration.worker_process import free_port
from topics.admin import apply_topics
from topics.registry import PipelineSpec, TopicRegistry, TopicSpec

pytestmark = pytest.mark.integration

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WAIT_S = 30.0


# ---- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def db_url(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_dl_store") as url:
        yield url


@pytest.fixture(scope="module")
def test_settings(db_url: str, kafka_bootstrap: str) -> Settings:
    return Settings(database=DatabaseSettings(url=SecretStr(db_url)))


@pytest.fixture(scope="module")
def engine(test_settings: Settings) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(test_settings.database_url)
    yield engine
    engine.dispose()


class Road:
    """One test's pipeline, its topics and its trigger topic."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.source = TopicSpec(name=f"{name}.source", partitions=2)
        self.triggers = TopicSpec(name=f"{name}.triggers", partitions=1)
        self.pipeline = PipelineSpec(
            name=name, inputs=(self.source.name,), retry_delays=(0.5, 2.0), partitions=2
        )
        registry = TopicRegistry()
        registry.declare(self.source)
        registry.declare(self.triggers)
        registry.declare_pipeline(self.pipeline)
        apply_topics(settings, registry)

    @property
    def pipelines(self) -> dict[str, PipelineSpec]:
        return {self.pipeline.name: self.pipeline}

    def store(
        self,
        engine: sqlalchemy.Engine,
        producer: AsyncProducer,
        group: str,
        *,
        settings: Settings | None = None,
        kind: type[DeadLetterStore] = DeadLetterStore,
    ) -> Any:
        """A store of this road's DLQ topic (``kind``: a subclass; ``settings``: other ones)."""
        return kind(
            settings or self.settings,
            engine,
            producer,
            pipelines=self.pipelines,
            group_id=group,
            trigger_topic=self.triggers.name,
        )


@pytest.fixture
def road(test_settings: Settings) -> Road:
    return Road(test_settings, f"t-dl-{uuid.uuid4().hex[:10]}")


def dead_headers(pipeline: str, n: int, error_class: str) -> list[tuple[str, bytes]]:
    history = FailureHistory(
        attempt=4,
        retries=3,
        original_topic=f"{pipeline}.source",
        original_partition=n % 2,
        original_offset=100 + n,
        original_timestamp_ms=1_700_000_000_000 + n,
        pipeline=pipeline,
        error_kind="retryable" if error_class == "TargetUnavailable" else "fatal",
        error_class=error_class,
        error_message=f"failure {n}",
        error_trace="Traceback (most recent call last): ...",
        first_failed_at_ms=1_700_000_001_000,
        last_failed_at_ms=1_700_000_002_000,
        not_before_ms=None,
        other=(("traceparent", TRACE.encode()), ("synapseops-event-id", f"evt_{n}".encode())),
    )
    return history.to_headers()


async def produce_dead(
    producer: AsyncProducer, road: Road, numbers: range, error_class: str = "TargetUnavailable"
) -> None:
    for n in numbers:
        await producer.send(
            road.pipeline.dlq_topic,
            f'{{"n": {n}}}'.encode(),
            key=f"key-{n}".encode(),
            headers=dead_headers(road.pipeline.name, n, error_class),
        )


def rows(engine: sqlalchemy.Engine, pipeline: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(
            select(dead_letters).where(dead_letters.c.pipeline == pipeline).order_by("id")
        )
        return [dict(row) for row in result.mappings()]


async def wait_for_rows(
    engine: sqlalchemy.Engine, pipeline: str, count: int, *, published: bool = True
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_S
    while True:
        found = await asyncio.to_thread(rows, engine, pipeline)
        done = [r for r in found if r["trigger_published_at"] is not None or not published]
        if len(done) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


def read_all(settings: Settings, topic: str, partitions: int) -> list[Any]:
    """Every record on ``topic`` right now (up to the high watermarks)."""
    consumer = Consumer(consumer_config(settings.kafka, f"t-read-{uuid.uuid4().hex}"))
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
        wanted = sum(ends.values())
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        messages: list[Any] = []
        deadline = time.monotonic() + WAIT_S
        while len(messages) < wanted and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
        assert len(messages) == wanted, f"read {len(messages)} of {wanted} from {topic}"
        return messages
    finally:
        consumer.close()


def decode_triggers(messages: list[Any]) -> list[dict[str, Any]]:
    serde = AvroSerde(LocalSchemaStore(), "notification_trigger")
    return [serde.decode(message.value()) for message in messages]


async def run_store(
    store: DeadLetterStore,
    engine: Any,
    pipeline: str,
    count: int,
    *,
    handles: int,
    published: bool = True,
) -> list[Any]:
    """Run ``store`` until it took ``handles`` records off the topic and ``count`` rows have
    their trigger published (or just exist); the rows."""
    await store.start()
    try:
        for _ in range(int(WAIT_S / 0.1)):
            if store.handled >= handles:
                break
            await asyncio.sleep(0.1)
        assert store.handled == handles, f"the store handled {store.handled} of {handles}"
        found = await wait_for_rows(engine, pipeline, count, published=published)
    finally:
        await store.stop()
    return found


# ---- the store --------------------------------------------------------------------------


def test_each_dead_record_is_stored_once_and_triggers_once(
    road: Road, engine: sqlalchemy.Engine, test_settings: Settings
) -> None:
    name = road.pipeline.name

    async def scenario() -> None:
        producer = AsyncProducer(test_settings.kafka)
        try:
            await produce_dead(producer, road, range(5))
            group = f"{name}-store"
            found = await run_store(road.store(engine, producer, group), engine, name, 5, handles=5)
            assert len(found) == 5

            # The same records consumed again (a new group reads the topic from the start):
            # no second row, no second trigger.
            again = await run_store(
                road.store(engine, producer, f"{name}-again"), engine, name, 5, handles=5
            )
            assert [r["id"] for r in again] == [r["id"] for r in found]

            # A restart of the first group picks up only what is new.
            await produce_dead(producer, road, range(5, 7), error_class="SchemaInvalid")
            after = await run_store(road.store(engine, producer, group), engine, name, 7, handles=2)
            assert len(after) == 7
        finally:
            await asyncio.to_thread(producer.close)

    asyncio.run(scenario())

    stored = rows(engine, name)
    assert len(stored) == 7
    assert len({(r["dlq_partition"], r["dlq_offset"]) for r in stored}) == 7
    first = next(r for r in stored if r["key"] == b"key-3")
    assert first["value"] == b'{"n": 3}'
    assert first["status"] == "dead"
    assert first["attempts"] == 4
    assert first["error_class"] == "TargetUnavailable"
    assert first["error_message"] == "failure 3"
    assert (first["original_topic"], first["original_offset"]) == (f"{name}.source", 103)
    assert first["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert first["headers"]["synapseops-event-id"] == "evt_3"
    assert all(r["trigger_published_at"] is not None for r in stored)

    triggers = decode_triggers(read_all(test_settings, road.triggers.name, 1))
    assert sorted(int(t["subject_id"]) for t in triggers) == sorted(r["id"] for r in stored)
    assert {t["kind"] for t in triggers} == {"dead_letter"}
    assert {t["pipeline"] for t in triggers} == {name}


def test_a_row_whose_trigger_was_never_published_gets_it_on_redelivery(
    road: Road, engine: sqlalchemy.Engine, test_settings: Settings
) -> None:
    name = road.pipeline.name

    async def scenario() -> None:
        producer = AsyncProducer(test_settings.kafka)
        try:
            await produce_dead(producer, road, range(3))
            await run_store(road.store(engine, producer, f"{name}-a"), engine, name, 3, handles=3)
            # What a crash between the insert and the trigger leaves behind.
            with engine.begin() as conn:
                conn.execute(
                    update(dead_letters)
                    .where(dead_letters.c.pipeline == name, dead_letters.c.key == b"key-1")
                    .values(trigger_published_at=None)
                )
            await run_store(road.store(engine, producer, f"{name}-b"), engine, name, 3, handles=3)
        finally:
            await asyncio.to_thread(producer.close)

    asyncio.run(scenario())
    stored = rows(engine, name)
    assert len(stored) == 3
    assert all(r["trigger_published_at"] is not None for r in stored)
    owed = next(r["id"] for r in stored if r["key"] == b"key-1")
    subjects = [
        int(t["subject_id"])
        for t in decode_triggers(read_all(test_settings, road.triggers.name, 1))
    ]
    assert sorted(subjects) == sorted([r["id"] for r in stored] + [owed])


# ---- replay -----------------------------------------------------------------------------


def test_replay_by_filter_sends_each_dead_record_once_to_its_first_tier(
    road: Road, engine: sqlalchemy.Engine, test_settings: Settings
) -> None:
    name = road.pipeline.name
    tier = road.pipeline.retry_topics[0]
    replay = DeadLetterReplay(engine, road.pipelines)

    async def scenario() -> dict[str, Any]:
        producer = AsyncProducer(test_settings.kafka)
        try:
            await produce_dead(producer, road, range(3), error_class="TargetUnavailable")
            await produce_dead(producer, road, range(3, 5), error_class="SchemaInvalid")
            await run_store(road.store(engine, producer, f"{name}-s"), engine, name, 5, handles=5)

            unavailable = DeadLetterFilter(pipeline=name, error_class="TargetUnavailable")
            dry = await replay.replay(unavailable, dry_run=True, producer=None)
            first = await replay.replay(
                unavailable, idempotency_key=f"{name}-k", producer=producer, rate_per_s=50
            )
            repeat = await replay.replay(
                unavailable, idempotency_key=f"{name}-k", producer=producer, rate_per_s=50
            )
            rest = await replay.replay(DeadLetterFilter(pipeline=name), producer=producer)
            nothing_left = await replay.replay(DeadLetterFilter(pipeline=name), producer=producer)
            return {
                "dry": dry,
                "first": first,
                "repeat": repeat,
                "rest": rest,
                "nothing_left": nothing_left,
            }
        finally:
            await asyncio.to_thread(producer.close)

    before = time.time() * 1000
    results = asyncio.run(scenario())
    assert (results["dry"].matched, results["dry"].replayed) == (3, 0)
    assert (results["first"].matched, results["first"].replayed) == (3, 3)
    # The same Idempotency-Key: the first answer again, nothing sent.
    assert results["repeat"] == results["first"]
    assert (results["rest"].matched, results["rest"].replayed) == (2, 2)
    assert (results["nothing_left"].matched, results["nothing_left"].replayed) == (0, 0)

    sent = read_all(test_settings, tier, road.pipeline.partitions)
    assert sorted(m.key() for m in sent) == [f"key-{n}".encode() for n in range(5)]
    assert read_all(test_settings, road.pipeline.retry_topics[1], 2) == []
    first_id = results["first"].replay_id
    for message in sent:
        n = int(message.key().decode().split("-")[1])
        assert message.value() == f'{{"n": {n}}}'.encode()
        history = FailureHistory.from_headers(message.headers())
        assert history.attempt == 4
        assert history.retries == 0
        assert history.replay_count == 1
        assert history.original_offset == 100 + n
        assert history.not_before_ms is not None and history.not_before_ms >= before - 1000
        assert dict(history.other)["traceparent"] == TRACE.encode()
        expected = first_id if n < 3 else results["rest"].replay_id
        assert history.replay_id == expected

    stored = rows(engine, name)
    assert {r["status"] for r in stored} == {"replayed"}
    assert all(r["replay_count"] == 1 for r in stored)
    assert {r["replay_id"] for r in stored if r["error_class"] == "TargetUnavailable"} == {first_id}
    with engine.connect() as conn:
        recorded = (
            conn.execute(select(replays).where(replays.c.replay_id == first_id)).mappings().one()
        )
    assert recorded["idempotency_key"] == f"{name}-k"
    assert recorded["response"] == results["first"].as_json()
    assert recorded["finished_at"] is not None


def test_discard_takes_rows_out_of_replay(
    road: Road, engine: sqlalchemy.Engine, test_settings: Settings
) -> None:
    name = road.pipeline.name
    replay = DeadLetterReplay(engine, road.pipelines)

    async def scenario() -> tuple[list[int], Any]:
        producer = AsyncProducer(test_settings.kafka)
        try:
            await produce_dead(producer, road, range(2), error_class="SchemaInvalid")
            await produce_dead(producer, road, range(2, 4), error_class="TargetUnavailable")
            await run_store(road.store(engine, producer, f"{name}-s"), engine, name, 4, handles=4)
            discarded = replay.discard(DeadLetterFilter(pipeline=name, error_class="SchemaInvalid"))
            result = await replay.replay(DeadLetterFilter(pipeline=name), producer=producer)
            return discarded, result
        finally:
            await asyncio.to_thread(producer.close)

    discarded, result = asyncio.run(scenario())
    assert len(discarded) == 2
    assert (result.matched, result.replayed) == (2, 2)
    statuses = {r["key"]: r["status"] for r in rows(engine, name)}
    assert statuses == {
        b"key-0": "discarded",
        b"key-1": "discarded",
        b"key-2": "replayed",
        b"key-3": "replayed",
    }


# ---- what the store cannot read never stops it ------------------------------------------


async def send_dead(
    producer: AsyncProducer, road: Road, key: str, headers: list[tuple[str, bytes]]
) -> None:
    # One partition: the records after a bad one are behind it, so "moved on" is tested.
    await producer.send(
        road.pipeline.dlq_topic, b'{"raw": true}', key=key.encode(), headers=headers, partition=0
    )


def test_a_record_the_store_cannot_read_is_stored_minimally_and_the_partition_moves_on(
    road: Road, engine: sqlalchemy.Engine, test_settings: Settings
) -> None:
    name = road.pipeline.name
    good = dead_headers(name, 0, "TargetUnavailable")

    def but(**changed: bytes) -> list[tuple[str, bytes]]:
        names = {k.replace("_", "-"): v for k, v in changed.items()}
        return [(n, names.get(n, v)) for n, v in good]

    async def scenario() -> None:
        producer = AsyncProducer(test_settings.kafka)
        try:
            # A timestamp no datetime can hold, an attempt count no integer column holds,
            # non-UTF-8 text and a partition that is not a number; then a good record.
            await send_dead(producer, road, "far", but(synapseops_original_timestamp=b"9" * 17))
            await send_dead(producer, road, "huge", but(synapseops_attempt=b"99999999999"))
            await send_dead(
                producer,
                road,
                "garbled",
                but(synapseops_error_message=b"\xff\xfe oops", synapseops_original_partition=b"x"),
            )
            await send_dead(producer, road, "good", good)
            store = road.store(engine, producer, f"{name}-store")
            await run_store(store, engine, name, 4, handles=4)
        finally:
            await asyncio.to_thread(producer.close)

    asyncio.run(scenario())
    stored = {r["key"]: r for r in rows(engine, name)}
    assert set(stored) == {b"far", b"huge", b"garbled", b"good"}

    far = stored[b"far"]  # minimal: where it sits, its bytes and headers, and why
    assert far["store_error"].startswith("stored minimally: ValueError")
    assert far["value"] == b'{"raw": true}' and far["dlq_partition"] == 0
    assert far["original_topic"] is None and far["error_class"] is None
    assert far["headers"]["synapseops-original-timestamp"] == "9" * 17
    assert far["headers"]["synapseops-error-class"] == "TargetUnavailable"

    huge = stored[b"huge"]  # complete, the unbelievable count read as unknown and said so
    assert huge["attempts"] == 0 and huge["error_class"] == "TargetUnavailable"
    assert "synapseops-attempt is not a number in range" in huge["store_error"]
    assert huge["failure_key"] is None

    garbled = stored[b"garbled"]
    assert garbled["original_partition"] is None
    assert "synapseops-error-message is not UTF-8 text" in garbled["store_error"]
    assert garbled["headers"]["synapseops-error-message"] == {
        "base64": base64.b64encode(b"\xff\xfe oops").decode()
    }

    assert stored[b"good"]["store_error"] is None and stored[b"good"]["attempts"] == 4
    assert all(r["trigger_published_at"] is not None for r in stored.values())
    triggers = decode_triggers(read_all(test_settings, road.triggers.name, 1))
    assert sorted(int(t["subject_id"]) for t in triggers) == sorted(
        r["id"] for r in stored.values()
    )


def test_a_trigger_the_schema_registry_cannot_encode_is_noted_and_the_partition_moves_on(
    road: Road, engine: sqlalchemy.Engine, test_settings: Settings
) -> None:
    name = road.pipeline.name
    with serving_registry() as (url, registry):  # a registry that lacks the trigger subject
        settings = test_settings.model_copy(
            update={"schema_registry": SchemaRegistrySettings(url=url)}
        )

        async def scenario() -> None:
            producer = AsyncProducer(settings.kafka)
            try:
                await produce_dead(producer, road, range(2))
                store = road.store(engine, producer, f"{name}-store", settings=settings)
                await run_store(store, engine, name, 2, handles=2, published=False)
            finally:
                await asyncio.to_thread(producer.close)

        asyncio.run(scenario())
    stored = rows(engine, name)
    assert len(stored) == 2
    for row in stored:
        assert row["trigger_published_at"] is None  # owed, and the row says why
        assert row["store_error"].startswith("trigger not published: ConfigurationError")
        assert "no such subject" in row["store_error"]
    assert any("notification_trigger" in request for request in registry.requests)


def test_two_copies_of_one_failure_make_one_row_and_one_trigger(
    road: Road, engine: sqlalchemy.Engine, test_settings: Settings
) -> None:
    """A hand-off retried after a lost delivery report: the same failure (original
    coordinates and attempt) twice on the DLQ topic."""
    name = road.pipeline.name

    async def scenario() -> None:
        producer = AsyncProducer(test_settings.kafka)
        try:
            await produce_dead(producer, road, range(1))
            await produce_dead(producer, road, range(1))  # the retried hand-off
            await produce_dead(producer, road, range(1, 2))
            store = road.store(engine, producer, f"{name}-store")
            await run_store(store, engine, name, 2, handles=3)
        finally:
            await asyncio.to_thread(producer.close)

    asyncio.run(scenario())
    stored = rows(engine, name)
    assert len(stored) == 2
    assert sorted(r["original_offset"] for r in stored) == [100, 101]
    assert stored[0]["failure_key"] == f"{name}|{name}.source|0|100|4"
    triggers = decode_triggers(read_all(test_settings, road.triggers.name, 1))
    assert sorted(int(t["subject_id"]) for t in triggers) == sorted(r["id"] for r in stored)


# ---- supervised: a store that dies is seen, counted and back -----------------------------


class DiesOnce(DeadLetterStore):
    """The real store, but its first record makes it raise what no record explains."""

    died = 0

    async def handle(self, record: DeadRecord) -> int:
        if DiesOnce.died == 0:
            DiesOnce.died += 1
            raise RuntimeError("injected: the store's task dies")
        return await super().handle(record)


def test_a_dead_store_is_named_by_health_counted_and_restarted(
    road: Road, engine: sqlalchemy.Engine, test_settings: Settings
) -> None:
    name = road.pipeline.name
    task = f"dead-letter-store:{name}"
    port = free_port()
    DiesOnce.died = 0
    backoff = SupervisionSettings(backoff_initial_s=1.0, backoff_max_s=2.0)

    async def get(path: str) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.get(f"http://127.0.0.1:{port}{path}", timeout=5)

    async def scenario() -> tuple[list[Any], list[Any]]:
        producer = AsyncProducer(test_settings.kafka)
        spec = TaskSpec(task, lambda: road.store(engine, producer, f"{name}-store", kind=DiesOnce))
        supervisor = Supervisor([spec], backoff)
        health = HealthServer(None, "127.0.0.1", port, supervisor=supervisor)
        seen_down: list[Any] = []
        try:
            await health.start()
            await supervisor.start()
            await produce_dead(producer, road, range(1))
            for _ in range(int(WAIT_S / 0.05)):
                answer = await get("/health")
                if answer.status_code == 503 and answer.json()["down"]:
                    seen_down.append(answer.json())
                    break
                await asyncio.sleep(0.05)
            found = await wait_for_rows(engine, name, 1)
            for _ in range(int(WAIT_S / 0.1)):
                if (await get("/health")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            return seen_down, [found, (await get("/health")).json(), (await get("/metrics")).text]
        finally:
            await supervisor.stop()
            await health.stop()
            await asyncio.to_thread(producer.close)

    seen_down, (found, healthy, metrics) = asyncio.run(scenario())
    [down] = seen_down
    assert down["status"] == "unavailable" and down["down"] == [task]
    assert down["tasks"][task]["state"] == "down"
    assert down["tasks"][task]["error"] == "RuntimeError: injected: the store's task dies"
    # Restarted: the record it died on was not committed, so the new store stored it.
    assert len(found) == 1 and found[0]["key"] == b"key-0"
    assert healthy["status"] == "ok" and healthy["tasks"][task]["restarts"] == 1
    assert f'synapseops_task_restarts_total{{task="{task}"}} 1.0' in metrics
    assert f'synapseops_task_up{{task="{task}"}} 1.0' in metrics


# ---- the schema registry: registered at start, never waited on inside the loop -----------


def test_registered_subjects_are_pinned_and_triggers_encode_without_asking_the_registry(
    test_settings: Settings,
) -> None:
    with serving_registry() as (url, registry):
        registry_settings = SchemaRegistrySettings(url=url)
        pinned = register_schemas(registry_settings)
        assert set(pinned) == {"notification_trigger", "canonical_event"}
        on_disk = LocalSchemaStore()  # every version of every subject, oldest first
        assert [len(registry.subjects[s]) for s in sorted(registry.subjects)] == [
            len(on_disk.versions(s)) for s in sorted(registry.subjects)
        ]
        assert all(request.startswith("POST ") for request in registry.requests)
        asked = len(registry.requests)
        settings = test_settings.model_copy(update={"schema_registry": registry_settings})
        row = to_row(DeadRecord("p", "p.dlq", 0, 1, None, b"{}", (), None))
        encoded = TriggerEncoder(settings).encode(trigger_record(1, row))
        assert len(registry.requests) == asked, "encoding asked the registry"
        assert int.from_bytes(encoded[1:5], "big") == pinned["notification_trigger"]
        decoded = AvroSerde(ConfluentRegistryStore(url), "notification_trigger").decode(encoded)
        assert decoded["kind"] == "dead_letter"


def test_a_trigger_is_encoded_off_the_event_loop(
    road: Road, engine: sqlalchemy.Engine, test_settings: Settings
) -> None:
    """The registry holds its answer until the event loop has run something else: if the
    encoding waited on it inside the loop, the loop could not, and the answer would go out
    only after the hold timed out."""
    loop_ran, get_arrived = threading.Event(), threading.Event()
    held: list[bool] = []

    def hold(path: str) -> None:
        get_arrived.set()
        held.append(loop_ran.wait(timeout=5))

    with serving_registry() as (url, registry):
        subject_text = (AVRO_DIR / "notification_trigger" / "v2.avsc").read_text()
        ConfluentRegistryStore(url).register("notification_trigger", subject_text)
        registry.before_get = hold
        settings = test_settings.model_copy(
            update={"schema_registry": SchemaRegistrySettings(url=url)}
        )

        async def scenario() -> int:
            producer = AsyncProducer(settings.kafka)
            store = road.store(engine, producer, f"{road.pipeline.name}-s", settings=settings)

            async def meanwhile() -> None:
                # Runs only if the loop is free while the registry holds its answer.
                await asyncio.to_thread(get_arrived.wait, 10)
                loop_ran.set()

            try:
                record = DeadRecord(
                    road.pipeline.name, road.pipeline.dlq_topic, 0, 7, None, b"{}", (), None
                )
                row_id, _ = await asyncio.gather(store.handle(record), meanwhile())
                return row_id
            finally:
                await asyncio.to_thread(producer.close)

        row_id = asyncio.run(scenario())
    assert held == [True], "the registry's answer was awaited inside the event loop"
    [row] = rows(engine, road.pipeline.name)
    assert row["id"] == row_id and row["trigger_published_at"] is not None
