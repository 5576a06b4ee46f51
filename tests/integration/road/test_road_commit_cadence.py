"""Background consumers commit once per batch, not once per record: a retry tier and the
dead-letter store, each given a backlog, counted by their commits (and by their records: each
handled once)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
import sqlalchemy
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic
from pydantic import SecretStr
from sqlalchemy import func, select

from sinks.dead_letters.tables import dead_letters
from streams.dead_letters import DeadLetterStore
from streams.road.headers import NOT_BEFORE
from streams.road.pipeline import Outcome, Pipeline
from streams.road.record import RoadRecord
from streams.road.router import FailureRouter
from streams.road.tier_consumer import TierConsumer
from synapseops.kafka import AsyncProducer, Outgoing, create_admin
from synapseops.settings import DatabaseSettings, Settings
from tests.integration.databases import fresh_database
from topics.registry import PipelineSpec

pytestmark = pytest.mark.timeout(120)

BACKLOG = 200


@pytest.fixture
def spec(kafka_bootstrap: str, settings: Settings) -> Iterator[PipelineSpec]:
    name = f"cadence-{uuid4().hex[:8]}"
    pipeline = PipelineSpec(name=name, inputs=(f"{name}.in",), retry_delays=(1.0,), partitions=2)
    topics = [*pipeline.inputs, *(t.name for t in pipeline.derived_topics()), f"{name}.triggers"]
    admin = create_admin(settings.kafka)
    for future in admin.create_topics([NewTopic(t, 2, 1) for t in topics]).values():
        future.result(timeout=15)
    yield pipeline
    for future in admin.delete_topics(topics).values():
        future.result(timeout=15)


def counting(cls: type[Any]) -> type[Any]:
    """``cls`` whose synchronous commits are counted."""

    class Counted(cls):  # type: ignore[misc, valid-type]
        commits = 0

        def commit(self, consumer: Consumer, offsets: list[TopicPartition]) -> bool:
            type(self).commits += 1
            return bool(super().commit(consumer, offsets))

    return Counted


async def backlog(settings: Settings, topic: str, headers: list[tuple[str, bytes]]) -> None:
    producer = AsyncProducer(settings.kafka)
    try:
        records = [
            Outgoing(topic, b"v%d" % n, key=b"k%d" % n, headers=headers) for n in range(BACKLOG)
        ]
        assert all(isinstance(a, tuple) for a in await producer.send_many(records))
    finally:
        producer.close()


async def until(condition: Any, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def test_a_tier_consumer_commits_once_per_batch(spec: PipelineSpec, settings: Settings) -> None:
    seen: list[bytes | None] = []

    async def handler(record: RoadRecord) -> Outcome:
        seen.append(record.value)
        return Outcome("done")

    async def scenario() -> int:
        due = str(int(time.time() * 1000) - 1000).encode()  # due already: no hold
        await backlog(settings, spec.retry_topic(0), [(NOT_BEFORE, due)])
        pipeline = Pipeline(name=spec.name, spec=spec, handlers={"road": handler})
        producer = AsyncProducer(settings.kafka)
        kind = counting(TierConsumer)
        tier = kind(pipeline, 0, FailureRouter(producer), settings.kafka, f"{spec.name}-w")
        tier.start()
        try:
            await until(lambda: len(seen) >= BACKLOG)
            await asyncio.sleep(1)
        finally:
            await tier.stop()
            producer.close()
        return int(kind.commits)

    commits = asyncio.run(scenario())
    assert sorted(seen) == sorted(b"v%d" % n for n in range(BACKLOG))
    assert commits < BACKLOG / 10, f"{commits} commits for {BACKLOG} records"


def test_the_dead_letter_store_commits_once_per_batch(
    spec: PipelineSpec, settings: Settings, database_url: str
) -> None:
    with fresh_database(database_url, "t_cadence") as url:
        database = DatabaseSettings(url=SecretStr(url))
        store_settings = settings.model_copy(update={"database": database})
        engine = sqlalchemy.create_engine(url)

        def stored() -> int:
            with engine.connect() as conn:
                return int(conn.scalar(select(func.count()).select_from(dead_letters)) or 0)

        async def scenario() -> int:
            await backlog(settings, spec.dlq_topic, [("synapseops-event-id", b"evt")])
            producer = AsyncProducer(settings.kafka)
            kind = counting(DeadLetterStore)
            store = kind(
                store_settings,
                engine,
                producer,
                pipelines={spec.name: spec},
                group_id=f"{spec.name}-store",
                trigger_topic=f"{spec.name}.triggers",
            )
            await store.start()
            try:
                await until(lambda: store.handled >= BACKLOG)
            finally:
                await store.stop()
                producer.close()
            return int(kind.commits)

        try:
            commits = asyncio.run(scenario())
            rows, published = stored(), None
            with engine.connect() as conn:
                published = conn.scalar(
                    select(func.count()).where(dead_letters.c.trigger_published_at.is_not(None))
                )
        finally:
            engine.dispose()
    assert rows == published == BACKLOG
    assert commits < BACKLOG / 10, f"{commits} commits for {BACKLOG} records"
