"""GitHub polling against the sandbox's GitHub (a real HTTP server) through the shared
poller: real Kafka, a fresh database.

The first poll publishes the whole timeline (oldest first, following Link pages); the next
sends the ETag and gets a 304 (nothing published); new events come alone; a 503 fault fails
that poll only (the cursor stays, nothing is lost); X-Poll-Interval sets the interval.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy
from pydantic import SecretStr

from sandbox.harness import SandboxServer
from sinks.aggregation.jobs import list_jobs
from sinks.aggregation.sources import create_source
from streams.aggregation.github_poll import GitHubSources
from streams.polling import Poller
from synapseops import headers as h
from synapseops.errors import TargetUnavailable
from synapseops.kafka import AsyncProducer
from synapseops.settings import DatabaseSettings, HttpSettings, KafkaSettings, Settings
from tests.integration.aggregation.canonical import end_offsets, read_topic
from tests.integration.databases import fresh_database
from topics.registry import AGGREGATION_RAW

pytestmark = pytest.mark.integration
REPO = "Codertocat/Hello-World"


@pytest.fixture
def poll_database(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_github_poll") as url:
        yield url


def _published(bootstrap: str, start: dict[int, int], name: str) -> list[dict]:
    found = read_topic(bootstrap, AGGREGATION_RAW.name, start, want=10_000, deadline_s=4)
    return [json.loads(v) for v, hs in found if hs.get(h.SOURCE) == name.encode()]


def test_github_is_polled_the_way_github_asks(kafka_bootstrap: str, poll_database: str) -> None:
    engine = sqlalchemy.create_engine(poll_database)
    name = f"gh-{uuid.uuid4().hex[:6]}"
    with SandboxServer() as sandbox:
        http = httpx.Client(base_url=sandbox.url, timeout=10)
        http.put("/_sandbox/limits", json={"github": {"poll_interval_s": 7}})
        config = {"url": f"{sandbox.url}/github/repos/{REPO}/events", "per_page": 2}
        create_source(
            engine,
            {
                "name": name,
                "kind": "poll",
                "logic": "github",
                "logic_version": 1,
                "config": config,
                "schedule_s": 1,
            },
        )
        settings = Settings(
            database=DatabaseSettings(url=SecretStr(poll_database)),
            kafka=KafkaSettings(bootstrap=kafka_bootstrap),
            http=HttpSettings(allowed_hosts="127.0.0.1"),
        )
        sources = GitHubSources(engine, settings)
        timeline = http.get(f"/github/repos/{REPO}/events", params={"per_page": 100}).json()

        async def scenario() -> None:
            producer = AsyncProducer(settings.kafka)
            poller = Poller(sources, engine, producer)
            try:
                (source,), _ = sources.listing()
                start = end_offsets(kafka_bootstrap, AGGREGATION_RAW.name)
                assert await poller.poll_once(source) == len(timeline)
                first = _published(kafka_bootstrap, start, name)
                assert [e["id"] for e in first] == [e["id"] for e in reversed(timeline)]

                (source,), _ = sources.listing()
                assert source.interval_s == 7  # X-Poll-Interval beats the 1 s schedule
                assert source.cursor and source.cursor["etag"]
                assert await poller.poll_once(source) == 0  # 304: unchanged

                added = await asyncio.to_thread(
                    http.post, "/_sandbox/github/events", json={"repo": REPO, "count": 3, "seed": 1}
                )
                made = added.json()["events"]
                fault = {"target": "github", "count": 1, "status": 503}
                await asyncio.to_thread(http.post, "/_sandbox/faults", json=fault)
                with pytest.raises(TargetUnavailable):
                    await poller.poll_once(source)
                (again,), _ = sources.listing()
                assert again.cursor == source.cursor  # a failed poll moved nothing
                start = end_offsets(kafka_bootstrap, AGGREGATION_RAW.name)
                assert await poller.poll_once(again) == 3
                assert [e["id"] for e in _published(kafka_bootstrap, start, name)] == [
                    e["id"] for e in made
                ]
            finally:
                producer.close()

        asyncio.run(scenario())
        statuses = [a["status"] for a in http.get("/_sandbox/github/attempts").json()]
        assert 304 in statuses and 503 in statuses
        http.close()
    jobs = list_jobs(engine, name)
    assert sorted(job["records_in"] for job in jobs) == sorted([3, len(timeline)])
    engine.dispose()
