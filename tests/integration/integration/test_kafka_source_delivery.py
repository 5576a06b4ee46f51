"""A Kafka-topic source delivered where it is read (streams/integration/topic_delivery.py),
proved on the real worker process, the real broker, PostgreSQL and the sandbox ERP.

* Its failures take the road: a target answering 503 twice sends those records through the
  retry tiers (and they are delivered, once), a record the mapping refuses is dead-lettered
  with its history — first failed at its place on the *source* topic, as a source event — and
  the partition behind it flows on; nothing of it went through ``integration.events``.
* ``kill -9`` in the middle of a burst: after a restart every record is one ERP order and
  one succeeded Run (the offsets were committed only after the deliveries were durable).
* A topic two source endpoints read keeps the forward hop (each copy a failure of its own):
  both endpoints' flows get every record.

Fails on the code before (session 9): every record was forwarded onto ``integration.events``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from sinks.integration import store
from sinks.integration.tables import SUCCEEDED, connectors, endpoints
from synapseops import headers as kh
from synapseops.kafka import producer_config
from synapseops.settings import Settings
from tests.integration.integration.test_integration_sources import (
    KAFKA_TO_ERP,
    create_topic,
    disable,
    erp_orders,
    flow_to_erp,
    published_events,
    records_after,
    succeeded_event_ids,
    wait_for,
    worker_for,
)
from tests.integration.integration.world import end_offsets, runs_of, world_context
from tests.integration.worker_process import WorkerProcess
from topics.registry import INTEGRATION_DELIVERY, INTEGRATION_EVENT, INTEGRATION_EVENTS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DLQ = f"{INTEGRATION_DELIVERY}.dlq"


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    with world_context(settings, database_url) as built:
        yield built


def kafka_source(
    world: dict[str, Any], topic: str, names: tuple[str, ...] = ("orders",)
) -> tuple[str, list[dict[str, Any]]]:
    """A kafka connector with one source endpoint per name, each reading ``topic``."""
    suffix = uuid.uuid4().hex[:8]
    connector = f"kafka-{suffix}"
    row = store.insert_row(world["engine"], connectors, {"name": connector, "protocol": "kafka"})
    sources = [
        store.insert_row(
            world["engine"],
            endpoints,
            {"connector_id": row["id"], "name": name, "direction": "source", "kafka_topic": topic},
        )
        for name in names
    ]
    return connector, sources


def order(run: str, key: str, n: int, email: str | None = "x@example.com") -> dict[str, Any]:
    value: dict[str, Any] = {"run": run, "customer": key, "n": n, "amount": f"{n}.00"}
    if email is not None:
        value["email"] = email
    return value


def produce(settings: Settings, topic: str, records: list[tuple[str, dict[str, Any]]]) -> None:
    producer = Producer(producer_config(settings.kafka))
    for key, value in records:
        producer.produce(topic, json.dumps(value).encode(), key=key.encode())
    assert producer.flush(30) == 0


def fault(world: dict[str, Any], **body: Any) -> None:
    url = f"{world['sandbox'].url}/_sandbox/faults"
    httpx.post(url, json={"target": "erp", **body}, timeout=10).raise_for_status()


def no_faults(world: dict[str, Any]) -> None:
    httpx.delete(f"{world['sandbox'].url}/_sandbox/faults", timeout=10).raise_for_status()


def test_failures_of_a_source_topic_take_the_road_and_nothing_goes_through_the_events_topic(
    world: dict[str, Any], kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = world["settings"]
    topic = f"t-direct-{uuid.uuid4().hex[:8]}"
    create_topic(settings, topic, partitions=1)
    connector, (source,) = kafka_source(world, topic)
    flow_id = flow_to_erp(world, source, KAFKA_TO_ERP)
    run = f"d{uuid.uuid4().hex[:8]}"
    events_marks = end_offsets(settings, INTEGRATION_EVENTS.name)
    dlq_marks = end_offsets(settings, DLQ)
    # 20 orders; the 6th has no email (the mapping's required rule fails: fatal).
    records = [("cust-a", order(run, "cust-a", n, None if n == 5 else "a@example.com"))
               for n in range(20)]  # fmt: skip
    worker = worker_for(world, kafka_bootstrap, tmp_path)
    worker.start()
    try:
        worker.wait_healthy()
        fault(world, count=2, status=503)  # the first two orders fail retryably
        produce(settings, topic, records)
        # Waited on in PostgreSQL: a listing at the ERP would take one of the 503s itself.
        wait_for(lambda: len(succeeded_event_ids(world, flow_id)) >= 19, "19 delivered", 60)
        time.sleep(2)  # a record delivered twice would be by now
    finally:
        no_faults(world)
        worker.stop()
        print(worker.log_tail())
        disable(world, flow_id)

    orders = Counter(o["external_id"] for o in erp_orders(world, run))
    assert orders == Counter(f"{run}-cust-a-{n}" for n in range(20) if n != 5)
    made = succeeded_event_ids(world, flow_id)
    assert len(made) == 19 and set(made.values()) == {1}
    # The two 503s went round a retry tier: their orders were made on a second attempt.
    assert sorted(r["attempt"] for r in runs_of(world, flow_id) if r["status"] == SUCCEEDED)[
        -2:
    ] == [2, 2]
    # The poison record: dead-lettered with where it really is, as a source event.
    dead = [r for r in records_after(settings, DLQ, dlq_marks)
            if kh.to_map(r.headers).get(kh.CONNECTOR) == connector]  # fmt: skip
    assert len(dead) == 1
    history = dead[0].history
    assert (history.original_topic, history.original_partition, history.original_offset) == (
        topic, 0, 5,
    )  # fmt: skip
    assert history.error_kind == "fatal" and "email" in (history.error_message or "")
    assert kh.message_kind(dead[0].headers) == INTEGRATION_EVENT
    assert json.loads(dead[0].value or b"")["n"] == 5  # the bytes as they were read
    # One hop: nothing of this connector was copied onto integration.events.
    assert published_events(settings, events_marks, connector) == []


def test_kill_9_mid_burst_on_a_source_topic_loses_nothing_and_doubles_nothing(
    world: dict[str, Any], kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = world["settings"]
    topic = f"t-direct-crash-{uuid.uuid4().hex[:8]}"
    create_topic(settings, topic, partitions=3)
    _, (source,) = kafka_source(world, topic)
    flow_id = flow_to_erp(world, source, KAFKA_TO_ERP)
    run = f"k{uuid.uuid4().hex[:8]}"
    total = 600
    records = [(f"c{n % 7}", order(run, f"c{n % 7}", n)) for n in range(total)]
    # Batches of 50: many commits in the burst, so the kill lands between some of them.
    worker = WorkerProcess(
        kafka_bootstrap,
        settings.database_url,
        tmp_path,
        extra_env={
            "SYNAPSEOPS_WORKER_PIPELINES": "integration-delivery",
            "SYNAPSEOPS_ROAD_BATCH_SIZE": "50",
            **world["worker_env"],
        },
    )
    worker.start()
    try:
        worker.wait_healthy()
        fault(world, latency_ms=30)  # every order a little slow: the kill lands mid-burst
        produce(settings, topic, records)
        wait_for(lambda: len(succeeded_event_ids(world, flow_id)) >= total // 4, "a quarter", 90)
        worker.kill_9()
        crashed_at = len(succeeded_event_ids(world, flow_id))
        worker.start()  # the same group: from the committed offsets
        worker.wait_healthy()
        wait_for(lambda: len(succeeded_event_ids(world, flow_id)) >= total, "all", 180)
        time.sleep(2)
    finally:
        no_faults(world)
        worker.stop()
        print(worker.log_tail())
        disable(world, flow_id)

    assert crashed_at < total, "the kill came after the burst: it proves nothing"
    orders = Counter(o["external_id"] for o in erp_orders(world, run))
    assert orders == Counter(f"{run}-c{n % 7}-{n}" for n in range(total))
    made = succeeded_event_ids(world, flow_id)
    assert len(made) == total and set(made.values()) == {1}
    print(f"direct source crash test: {total} records, kill -9 after {crashed_at} delivered")


def test_a_topic_read_by_two_endpoints_reaches_both_flows_through_the_events_topic(
    world: dict[str, Any], kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = world["settings"]
    topic = f"t-fanout-{uuid.uuid4().hex[:8]}"
    create_topic(settings, topic, partitions=1)
    connector, sources = kafka_source(world, topic, ("orders", "audit"))
    run = f"f{uuid.uuid4().hex[:8]}"
    # One ERP order per record and flow: the two flows' external ids differ by a prefix.
    flows = [
        flow_to_erp(world, source, [{**KAFKA_TO_ERP[0], "template": f"{prefix}-{{run}}-{{n}}"},
                                    *KAFKA_TO_ERP[1:]])
        for prefix, source in zip(("o", "a"), sources, strict=True)
    ]  # fmt: skip
    marks = end_offsets(settings, INTEGRATION_EVENTS.name)
    worker = worker_for(world, kafka_bootstrap, tmp_path)
    worker.start()
    try:
        worker.wait_healthy()
        produce(settings, topic, [("k", order(run, "k", n)) for n in range(5)])
        wait_for(lambda: all(len(succeeded_event_ids(world, f)) == 5 for f in flows), "both", 60)
    finally:
        worker.stop()
        print(worker.log_tail())
        for flow_id in flows:
            disable(world, flow_id)

    made = Counter(o["external_id"] for o in erp_orders(world, "o-") + erp_orders(world, "a-"))
    assert made == Counter(f"{p}-{run}-{n}" for p in "oa" for n in range(5))
    copies = published_events(settings, marks, connector)
    assert Counter((kh.to_map(r.headers)[kh.ENDPOINT]) for r in copies) == {"orders": 5, "audit": 5}
    for flow_id in flows:
        assert set(succeeded_event_ids(world, flow_id)) == {f"{topic}/0/{n}" for n in range(5)}
