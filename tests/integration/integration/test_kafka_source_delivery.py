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
from contextlib import contextmanager
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
    erp_requests,
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


BURST = 600


def burst_flow(world: dict[str, Any], name: str) -> tuple[str, int, str]:
    """A 3-partition source topic and its flow to the ERP: (topic, flow id, run id)."""
    topic = f"t-direct-{name}-{uuid.uuid4().hex[:8]}"
    create_topic(world["settings"], topic, partitions=3)
    _, (source,) = kafka_source(world, topic)
    return topic, flow_to_erp(world, source, KAFKA_TO_ERP), f"{name[0]}{uuid.uuid4().hex[:8]}"


def burst_records(run: str) -> list[tuple[str, dict[str, Any]]]:
    """:data:`BURST` orders over seven keys."""
    return [(f"c{n % 7}", order(run, f"c{n % 7}", n)) for n in range(BURST)]


def burst_worker(
    world: dict[str, Any], kafka_bootstrap: str, data_dir: Path, group: str | None = None
) -> WorkerProcess:
    """A worker in batches of 50: many commits in the burst, so a kill or a rebalance lands
    between some of them."""
    data_dir.mkdir(exist_ok=True)
    env = {
        "SYNAPSEOPS_WORKER_PIPELINES": "integration-delivery",
        "SYNAPSEOPS_ROAD_BATCH_SIZE": "50",
    }
    return WorkerProcess(
        kafka_bootstrap,
        world["settings"].database_url,
        data_dir,
        group_id=group,
        extra_env={**env, **world["worker_env"]},
    )


def delivered(world: dict[str, Any], flow_id: int) -> int:
    return len(succeeded_event_ids(world, flow_id))


@contextmanager
def slow_erp_burst(
    world: dict[str, Any], flow_id: int, *workers: WorkerProcess, latency_ms: int = 30
) -> Iterator[None]:
    """Every ERP order a little slow (a kill or a rebalance lands mid-burst); after, the
    faults cleared, the workers stopped (their logs printed), the flow disabled."""
    fault(world, latency_ms=latency_ms)
    try:
        yield
    finally:
        no_faults(world)
        for worker in workers:
            worker.stop()
            print(worker.log_tail())
        disable(world, flow_id)


def assert_each_once_in_order(world: dict[str, Any], run: str, flow_id: int) -> None:
    """Every order of the burst made once at the ERP, each key's in the order produced, and
    one succeeded Run per record."""
    made = erp_orders(world, run)
    assert Counter(o["external_id"] for o in made) == Counter(
        f"{run}-c{n % 7}-{n}" for n in range(BURST)
    )
    for key in {f"c{n % 7}" for n in range(BURST)}:
        ns = [
            int(o["external_id"].rsplit("-", 1)[1]) for o in made if f"-{key}-" in o["external_id"]
        ]
        assert ns == sorted(ns), f"key {key}'s orders out of order"
    runs = succeeded_event_ids(world, flow_id)
    assert len(runs) == BURST and set(runs.values()) == {1}


def test_kill_9_mid_burst_on_a_source_topic_loses_nothing_and_doubles_nothing(
    world: dict[str, Any], kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic, flow_id, run = burst_flow(world, "crash")
    worker = burst_worker(world, kafka_bootstrap, tmp_path)
    with slow_erp_burst(world, flow_id, worker):
        worker.start()
        worker.wait_healthy()
        produce(world["settings"], topic, burst_records(run))
        wait_for(lambda: delivered(world, flow_id) >= BURST // 4, "a quarter", 90)
        worker.kill_9()
        crashed_at = delivered(world, flow_id)
        worker.start()  # the same group: from the committed offsets
        worker.wait_healthy()
        wait_for(lambda: delivered(world, flow_id) >= BURST, "all", 180)
        time.sleep(2)

    assert crashed_at < BURST, "the kill came after the burst: it proves nothing"
    assert_each_once_in_order(world, run, flow_id)
    print(f"direct source crash test: {BURST} records, kill -9 after {crashed_at} delivered")


def test_a_rebalance_mid_burst_settles_the_lanes_in_flight_and_keeps_each_keys_order(
    world: dict[str, Any], kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A second worker joins, then the first leaves, while batches are in flight in the
    first's partition lanes (streams/partition_lanes.py): each revoke waits for the revoked
    lanes and commits what they finished, so no record is lost or done twice, and every
    key's orders reach the ERP in the order they were produced."""
    topic, flow_id, run = burst_flow(world, "rebalance")
    group = f"t-rebalance-{uuid.uuid4().hex[:8]}"  # one group: the two share the partitions
    first, second = (burst_worker(world, kafka_bootstrap, tmp_path / n, group) for n in "ab")
    # Slow enough that a batch is in flight longer than the group takes to rebalance: a
    # revoke that did not wait for it would let the next owner send its records again.
    with slow_erp_burst(world, flow_id, first, second, latency_ms=200):
        first.start()
        first.wait_healthy()
        produce(world["settings"], topic, burst_records(run))
        wait_for(lambda: delivered(world, flow_id) >= BURST // 5, "a fifth", 90)
        second.start()  # joins the source group: the first's lanes are revoked mid-flight
        second.wait_healthy()
        wait_for(lambda: delivered(world, flow_id) >= BURST // 2, "a half", 120)
        left_at = delivered(world, flow_id)
        first.stop()  # leaves: its lanes settle and are committed as it goes
        wait_for(lambda: delivered(world, flow_id) >= BURST, "all", 180)
        time.sleep(2)

    assert left_at < BURST, "the first left after the burst: it proves nothing"
    assert_each_once_in_order(world, run, flow_id)
    # Not even sent twice: each revoke let the lanes finish and committed them, so the next
    # owner started after them instead of redoing what was in flight.
    assert len(erp_requests(world, flow_id)) == BURST
    print(f"rebalance test: {BURST} records, the first worker left after {left_at} delivered")


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
