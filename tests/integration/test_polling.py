"""The shared poller (``streams/polling.py``) with a family of its own, as the CRM and GitHub
sources will plug in: two workers over real PostgreSQL claims and a real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy
from confluent_kafka import Consumer
from confluent_kafka.admin import NewTopic

from streams.polling import Page, PolledRecord, Poller
from streams.source_metrics import SOURCE_FAILURES
from synapseops.errors import RetryableError
from synapseops.kafka import AsyncProducer, consumer_config, create_admin
from synapseops.settings import Settings

PAGES = 4  # pages of the healthy feed
PER_PAGE = 3


@dataclass(frozen=True)
class Feed:
    key: int
    interval_s: float
    cursor: Any
    where: Mapping[str, str]


@dataclass
class Feeds:
    """A family of two feeds whose cursors live in ``cursors`` (one store both workers share,
    like the endpoints table): ``good`` pages through PAGES pages, ``broken`` always fails."""

    topic: str
    cursors: dict[int, int] = field(default_factory=dict)
    fetches: dict[int, int] = field(default_factory=dict)
    kind: str = "test"
    lock_class: int = 7_100
    good: int = 910_001
    broken: int = 910_002

    def listing(self) -> tuple[Sequence[Feed], Mapping[str, list[str]]]:
        feeds = [
            Feed(key, 0.05, self.cursors.get(key), {"feed": str(key)})
            for key in (self.good, self.broken)
        ]
        return feeds, {"misconfigured": ["no such thing"]}

    async def fetch(self, source: Feed) -> Page:
        self.fetches[source.key] = self.fetches.get(source.key, 0) + 1
        if source.key == self.broken:
            raise RetryableError("the feed is down")
        page = source.cursor or 0
        if page >= PAGES:
            return Page([], page)
        records = [
            PolledRecord(self.topic, b"k", f"{page}-{n}".encode(), [("n", str(n).encode())])
            for n in range(PER_PAGE)
        ]
        return Page(records, page + 1)

    def advance(self, source: Feed, cursor: Any) -> None:
        self.cursors[source.key] = int(cursor)


@pytest.fixture
def topic(kafka_bootstrap: str, settings: Settings, unique_name: str) -> Iterator[str]:
    admin = create_admin(settings.kafka)
    for future in admin.create_topics([NewTopic(unique_name, 1, 1)]).values():
        future.result(timeout=15)
    yield unique_name
    for future in admin.delete_topics([unique_name]).values():
        future.result(timeout=15)


def read_all(settings: Settings, topic: str, expected: int) -> list[bytes]:
    consumer = Consumer(
        consumer_config(settings.kafka, f"{topic}-reader", **{"auto.offset.reset": "earliest"})
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value() or b"")
            elif message is None and len(values) >= expected:
                break
    finally:
        consumer.close()
    return values


def test_two_workers_publish_every_page_once_and_a_broken_feed_backs_off_alone(
    settings: Settings, database_url: str, topic: str
) -> None:
    engine = sqlalchemy.create_engine(database_url)
    feeds = Feeds(topic)
    failed_before = SOURCE_FAILURES.labels("test", "poll_failed")._value.get()
    producer = AsyncProducer(settings.kafka)

    async def scenario() -> list[Poller[Feed]]:
        workers = [Poller(feeds, engine, producer, refresh_s=0.2) for _ in range(2)]
        tasks = [asyncio.create_task(worker.run()) for worker in workers]
        for _ in range(200):
            if feeds.cursors.get(feeds.good) == PAGES:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # let the broken feed fail a few more times
        for worker in workers:
            await worker.stop()
        await asyncio.gather(*tasks)
        return workers

    try:
        workers = asyncio.run(scenario())
        values = read_all(settings, topic, PAGES * PER_PAGE)
    finally:
        producer.close()
        engine.dispose()

    # Every page once, in order, though two workers ran: only one held the feed.
    assert values == [f"{p}-{n}".encode() for p in range(PAGES) for n in range(PER_PAGE)]
    assert feeds.cursors[feeds.good] == PAGES
    # The broken feed never advanced and never stopped the good one; each failure was counted
    # (metric and the holder's run of failures, which sets its doubling backoff).
    assert feeds.broken not in feeds.cursors
    fetched = feeds.fetches[feeds.broken]
    assert fetched >= 1
    assert SOURCE_FAILURES.labels("test", "poll_failed")._value.get() - failed_before == fetched
    assert sorted(worker._failures.get(feeds.broken, 0) for worker in workers) == [0, fetched]
    # Stopped, the workers gave their claims up.
    assert all(worker.claims.held == frozenset() for worker in workers)
