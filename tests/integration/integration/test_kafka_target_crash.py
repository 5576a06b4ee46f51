"""``kill -9`` of the real worker in the middle of a burst into a Kafka-target flow: after a
restart every source event has its output, and every copy of one event's output carries the
same ``Idempotency-Key`` and the same bytes (so a consumer keeps exactly one); one succeeded
Run per event. Counted by source event id.

Fails on the code before issue 10: a flow could not target a topic (nothing was produced).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sinks.integration.tables import SUCCEEDED
from streams.integration.delivery import idempotency_key
from synapseops import headers as kh
from synapseops.kafka import AsyncProducer
from synapseops.settings import Settings
from tests.integration.integration.batch_world import make_kafka_flow, make_topic, read_topic
from tests.integration.integration.world import MAPPING, order_body, runs_of, world_context
from tests.integration.worker_process import WorkerProcess
from topics.registry import INTEGRATION_EVENTS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EVENTS = 400


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    with world_context(settings, database_url) as built:
        yield built


async def _burst(settings: Settings, connector: str, run: str) -> None:
    producer = AsyncProducer(settings.kafka)
    try:
        await asyncio.gather(
            *(
                producer.send(
                    INTEGRATION_EVENTS.name,
                    order_body(900000 + n),
                    key=f"c{n % 7}".encode(),
                    headers=[
                        (kh.EVENT_ID, f"{run}-{n}".encode()),
                        (kh.CONNECTOR, connector.encode()),
                        (kh.ENDPOINT, b"orders"),
                    ],
                )
                for n in range(EVENTS)
            )
        )
    finally:
        await asyncio.to_thread(producer.close)


def _succeeded(world: dict[str, Any], flow_id: int) -> int:
    return sum(1 for run in runs_of(world, flow_id) if run["status"] == SUCCEEDED)


def _wait(condition: Any, what: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_kill_9_mid_burst_into_a_kafka_target_loses_nothing(
    world: dict[str, Any], kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = world["settings"]
    topic = make_topic(settings)
    connector, flow_id = make_kafka_flow(world, json.loads(MAPPING.read_text()), topic)
    worker = WorkerProcess(
        kafka_bootstrap,
        settings.database_url,
        tmp_path,
        extra_env={"SYNAPSEOPS_WORKER_PIPELINES": "integration-delivery", **world["worker_env"]},
    )
    run = f"crash-{uuid.uuid4().hex[:8]}"
    worker.start()
    try:
        worker.wait_healthy()
        asyncio.run(_burst(settings, connector, run))
        _wait(lambda: _succeeded(world, flow_id) >= EVENTS // 4, "a quarter delivered", 120)
        worker.kill_9()  # mid-burst: produces in flight, Runs not yet finished
        crashed_at = _succeeded(world, flow_id)
        worker.start()  # same group: from the committed offsets
        worker.wait_healthy()
        _wait(lambda: _succeeded(world, flow_id) >= EVENTS, "every event delivered", 240)
    finally:
        worker.stop()
        print(worker.log_tail())

    out = read_topic(settings, topic, EVENTS)
    copies: dict[str, list[Any]] = defaultdict(list)
    for record in out:
        copies[(record.header(kh.EVENT_ID) or b"").decode()].append(record)
    assert set(copies) == {f"{run}-{n}" for n in range(EVENTS)}, "an event has no output"
    for event_id, records in copies.items():
        keys = {r.header("Idempotency-Key") for r in records}
        assert keys == {idempotency_key(flow_id, event_id).encode()}
        assert len({r.value for r in records}) == 1  # a copy is the same record, never another
    succeeded = Counter(
        r["source_event_id"] for r in runs_of(world, flow_id) if r["status"] == SUCCEEDED
    )
    assert len(succeeded) == EVENTS and set(succeeded.values()) == {1}
    doubled = sum(len(records) - 1 for records in copies.values())
    print(
        f"kafka-target crash test: {EVENTS} events, kill -9 after {crashed_at} Runs succeeded; "
        f"{len(out)} records on the topic, {len(copies)} distinct by Idempotency-Key, "
        f"{doubled} produced again after the crash (deduped by the header)"
    )
