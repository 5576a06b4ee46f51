"""API Integration sources that are not webhooks, proved on the real worker process.

* A polled REST source: the sandbox HubSpot change feed (``GET /hubspot/_changes?since=``,
  read three changes a page) whose flow creates one ERP order per contact. Contacts made
  before the worker starts, while it runs, and while it is down (killed with ``kill -9``) each
  become exactly one ERP order; the cursor is stored in PostgreSQL and the restarted worker
  polls on from it, so nothing old is published or sent again.
* A Kafka-topic source: a topic of the user's, created here, whose records (some with their
  own event id, one sent twice) each become exactly one ERP order, in order per key —
  delivered where they are read, without a copy on ``integration.events``.

Everything is counted by id where it arrived: ERP orders by external id, ERP requests by
``Idempotency-Key``, ``integration.events`` records by event id, succeeded Runs by source
event id.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic
from sqlalchemy import select, update

from sinks.integration import store
from sinks.integration.tables import SUCCEEDED, connectors, endpoints, flows
from streams.integration.delivery import idempotency_key
from streams.road import RoadRecord
from synapseops import headers as kh
from synapseops.kafka import consumer_config, create_admin, producer_config
from synapseops.settings import Settings
from tests.integration.integration.world import end_offsets, runs_of, world_context
from tests.integration.worker_process import WorkerProcess
from topics.registry import INTEGRATION_EVENTS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TOKEN = f"tok-{uuid.uuid4().hex}"
# One ERP order per source item: money from the item, one constant line.
LINE = [{"sku": "SEAT-1", "quantity": 1, "unit_price": "10.00"}]


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    with world_context(settings, database_url) as built:
        yield built


# ---- the world's records ---------------------------------------------------------------------


def flow_to_erp(world: dict[str, Any], source: dict[str, Any], rules: list[dict[str, Any]]) -> int:
    """An ERP order target and a flow from ``source`` (an endpoint row) to it."""
    engine, settings = world["engine"], world["settings"]
    suffix = uuid.uuid4().hex[:8]
    erp = store.insert_row(
        engine,
        connectors,
        {"name": f"erp-{suffix}", "protocol": "rest", "base_url": world["sandbox"].url},
    )
    bearer = store.create_credential(
        engine, settings, name=f"erp-{suffix}", kind="bearer", secret=TOKEN
    )
    target = store.insert_row(
        engine,
        endpoints,
        {
            "connector_id": erp["id"],
            "name": "orders",
            "direction": "target",
            "method": "POST",
            "path": "/erp/api/orders",
            "config": {"timeout_s": 5},
        },
    )
    mapping = store.create_mapping(engine, name=f"m-{suffix}", rules={"rules": rules})
    flow = store.insert_row(
        engine,
        flows,
        {
            "name": f"f-{suffix}",
            "source_endpoint_id": source["id"],
            "target_endpoint_id": target["id"],
            "credential_id": bearer["id"],
            "mapping_id": mapping["id"],
        },
    )
    return int(flow["id"])


def disable(world: dict[str, Any], flow_id: int) -> None:
    """Later tests of the module run their own workers: this flow stays out of their way."""
    with world["engine"].begin() as conn:
        conn.execute(update(flows).where(flows.c.id == flow_id).values(enabled=False))


def worker_for(world: dict[str, Any], kafka_bootstrap: str, data_dir: Path) -> WorkerProcess:
    return WorkerProcess(
        kafka_bootstrap,
        world["settings"].database_url,
        data_dir,
        extra_env={"SYNAPSEOPS_WORKER_PIPELINES": "integration-delivery", **world["worker_env"]},
    )


# ---- what arrived where ----------------------------------------------------------------------


def sandbox(world: dict[str, Any], method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(method, f"{world['sandbox'].url}{path}", timeout=10, **kwargs)
    response.raise_for_status()
    return response.json()


def erp_orders(world: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """ERP orders whose external id starts with ``prefix``, in the order the ERP made them."""
    listing = sandbox(world, "GET", "/erp/api/orders", headers={"Authorization": "Bearer x"})
    return [o for o in listing["orders"] if str(o["external_id"]).startswith(prefix)]


def erp_requests(world: dict[str, Any], flow_id: int) -> list[dict[str, Any]]:
    """Every order request of the flow that reached the ERP (idempotent replays included)."""
    prefix = f"synapseops-flow-{flow_id}-"
    return [
        a
        for a in sandbox(world, "GET", "/_sandbox/erp/attempts")
        if str(a.get("headers", {}).get("idempotency-key", "")).startswith(prefix)
    ]


def records_after(settings: Settings, topic: str, marks: list[int]) -> list[RoadRecord]:
    """Every record of ``topic`` past ``marks`` (its partitions' start offsets)."""
    ends = end_offsets(settings, topic)
    consumer = Consumer(consumer_config(settings.kafka, f"t-read-{uuid.uuid4().hex}"))
    pending = {p for p, (start, end) in enumerate(zip(marks, ends, strict=True)) if end > start}
    consumer.assign([TopicPartition(topic, p, marks[p]) for p in pending])
    found: list[RoadRecord] = []
    deadline = time.monotonic() + 20
    try:
        while pending and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            record = RoadRecord.from_confluent(message)
            found.append(record)
            if record.offset + 1 >= ends[record.partition]:
                pending.discard(record.partition)
    finally:
        consumer.close()
    assert not pending, f"{topic} partitions {pending} not read to their end"
    return found


def published_events(settings: Settings, marks: list[int], connector: str) -> list[RoadRecord]:
    """The records of ``connector`` on ``integration.events`` after ``marks`` (start offsets)."""
    return [
        record
        for record in records_after(settings, INTEGRATION_EVENTS.name, marks)
        if kh.to_map(record.headers).get(kh.CONNECTOR) == connector
    ]


def succeeded_event_ids(world: dict[str, Any], flow_id: int) -> Counter[str]:
    return Counter(
        str(r["source_event_id"]) for r in runs_of(world, flow_id) if r["status"] == SUCCEEDED
    )


def wait_for(condition: Callable[[], bool], what: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


# ---- 1. a polled REST source ---------------------------------------------------------------

HUBSPOT_TO_ERP: list[dict[str, Any]] = [
    {"target": "external_id", "template": "hs-{id}"},
    {"target": "currency", "const": "EUR"},
    {"target": "customer.email", "source": "fields.email", "required": True},
    {"target": "customer.id", "source": "id", "as": "string"},
    {"target": "lines", "const": LINE},
    {"target": "totals.subtotal", "source": "fields.amount", "transforms": ["to_decimal"]},
    {"target": "totals.total", "source": "fields.amount", "transforms": ["to_decimal"]},
]


def create_contacts(world: dict[str, Any], count: int) -> list[str]:
    """HubSpot contacts made at the sandbox; each adds one change to its feed."""
    made = []
    for _ in range(count):
        n = uuid.uuid4().int % 10**6
        body = {"properties": {"email": f"c{n}@example.com", "amount": f"{n % 997}.{n % 100:02d}"}}
        created = sandbox(
            world,
            "POST",
            "/hubspot/crm/v3/objects/contacts",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        made.append(str(created["id"]))
    return made


def change_feed_polls(world: dict[str, Any]) -> list[dict[str, list[str]]]:
    return [
        parse_qs(a["query"])
        for a in sandbox(world, "GET", "/_sandbox/hubspot/attempts")
        if a["method"] == "GET" and a["path"].endswith("/_changes")
    ]


def stored_cursor(world: dict[str, Any], endpoint_id: int) -> Any:
    with world["engine"].connect() as conn:
        return conn.execute(
            select(endpoints.c.cursor).where(endpoints.c.id == endpoint_id)
        ).scalar_one()


def feed_source(
    world: dict[str, Any], config: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any], int]:
    """A polled source on the sandbox HubSpot change feed, starting after the changes the
    feed has now: ``(connector name, endpoint row, where the feed stood)``. Written to the
    database directly, as a row from before any check would be; ``config`` replaces the
    reading config."""
    engine, settings = world["engine"], world["settings"]
    suffix = uuid.uuid4().hex[:8]
    connector = f"hubspot-{suffix}"
    feed_end = int(
        sandbox(
            world,
            "GET",
            "/hubspot/_changes",
            params={"since": 0, "limit": 5000},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )["last_seq"]
    )
    hubspot = store.insert_row(
        engine,
        connectors,
        {"name": connector, "protocol": "rest", "base_url": world["sandbox"].url},
    )
    reader = store.create_credential(
        engine, settings, name=f"hs-{suffix}", kind="bearer", secret=TOKEN
    )
    feed = store.insert_row(
        engine,
        endpoints,
        {
            "connector_id": hubspot["id"],
            "name": "contacts",
            "direction": "source",
            "path": "/hubspot/_changes",
            "poll_interval_s": 1,
            "secret_credential_id": reader["id"],
            # Three a page, so one burst of contacts takes several polls to drain.
            "config": config
            if config is not None
            else {
                "initial_cursor": feed_end,
                "items_path": "changes",
                "next_cursor_path": "last_seq",
                "item_id_path": "seq",
                "entity_key_path": "id",
                "params": {"limit": 3},
            },
        },
    )
    return connector, feed, feed_end


def test_polled_change_feed_delivers_each_item_once_and_the_cursor_survives_a_restart(
    world: dict[str, Any], kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = world["settings"]
    connector, feed, feed_end = feed_source(world)
    flow_id = flow_to_erp(world, feed, HUBSPOT_TO_ERP)
    marks = end_offsets(settings, INTEGRATION_EVENTS.name)

    contacts = create_contacts(world, 5)  # before any worker polls
    worker = worker_for(world, kafka_bootstrap, tmp_path)
    worker.start()
    try:
        worker.wait_healthy()
        contacts += create_contacts(world, 5)  # while it polls
        wait_for(lambda: len(succeeded_event_ids(world, flow_id)) == 10, "10 runs", 45)
        wait_for(lambda: stored_cursor(world, feed["id"]) == feed_end + 10, "cursor", 10)
        worker.kill_9()  # no shutdown: only what is in PostgreSQL survives
        sent_before_kill = erp_requests(world, flow_id)

        polls_before_restart = len(change_feed_polls(world))
        contacts += create_contacts(world, 3)  # while no worker runs
        worker.start()
        worker.wait_healthy()
        wait_for(lambda: len(succeeded_event_ids(world, flow_id)) == 13, "13 runs", 45)
        time.sleep(2)  # a re-polled page would be delivered by now
    finally:
        worker.stop()
        print(worker.log_tail())
        disable(world, flow_id)

    seqs = [str(n) for n in range(feed_end + 1, feed_end + 14)]
    orders = Counter(o["external_id"] for o in erp_orders(world, "hs-"))
    assert orders == Counter(f"hs-{c}" for c in contacts), "an item lost or doubled at the ERP"
    requests = erp_requests(world, flow_id)
    key_of = {idempotency_key(flow_id, seq): seq for seq in seqs}

    def item(request: dict[str, Any]) -> str:
        return key_of.get(request["headers"]["idempotency-key"], "?")

    assert {item(a) for a in requests} == set(seqs), requests
    assert all(a["outcome"] == "accepted" for a in requests), requests
    # A key sent twice is the road redoing a batch cut short (a rebalance at start): the ERP
    # answered the second with its replay of the same order. Nothing else may repeat.
    for a in requests:
        first = next(b for b in requests if item(b) == item(a))
        assert a["replayed"] == (a is not first), ("sent twice, not as a replay", a, requests)
    # The restarted worker sent only the items polled after the kill: none delivered before it.
    delivered_before = {item(a) for a in sent_before_kill}
    resent = [a for a in requests[len(sent_before_kill) :] if item(a) in delivered_before]
    assert not resent, ("an old item was sent again after the restart", resent)
    assert succeeded_event_ids(world, flow_id) == Counter(seqs)
    assert stored_cursor(world, feed["id"]) == feed_end + 13

    # The restarted worker polled on from the stored cursor, never from the start ...
    after_restart = change_feed_polls(world)[polls_before_restart:]
    assert after_restart and after_restart[0]["since"] == [str(feed_end + 10)], after_restart[:2]
    assert all(int(q["since"][0]) >= feed_end + 10 for q in after_restart)
    assert all(q["limit"] == ["3"] for q in after_restart)
    # ... so every change was published once, keyed by its contact.
    published = published_events(settings, marks, connector)
    assert Counter(kh.to_map(r.headers)[kh.EVENT_ID] for r in published) == Counter(seqs)
    assert {r.key for r in published} == {c.encode() for c in contacts}
    assert all(json.loads(r.value)["op"] == "created" for r in published)


# ---- 2. a Kafka-topic source -----------------------------------------------------------------

KAFKA_TO_ERP: list[dict[str, Any]] = [
    {"target": "external_id", "template": "{run}-{customer}-{n}"},
    {"target": "currency", "const": "USD"},
    {"target": "customer.email", "source": "email", "required": True},
    {"target": "lines", "const": LINE},
    {"target": "totals.subtotal", "source": "amount", "transforms": ["to_decimal"]},
    {"target": "totals.total", "source": "amount", "transforms": ["to_decimal"]},
]
KEYS = ("cust-a", "cust-b", "cust-c", "cust-d")
PER_KEY = 8


def create_topic(settings: Settings, name: str, partitions: int) -> None:
    admin = create_admin(settings.kafka)
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    for future in futures.values():
        future.result(timeout=30)


# What a user's record may carry but never gets through: the platform's own headers.
FOREIGN_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
FORGED = [
    ("synapseops-attempt", b"7"),
    ("synapseops-error-kind", b"fatal"),
    (kh.EVENT_ID, b"forged"),
    (kh.FLOW_ID, b"999999"),
    (kh.TRACEPARENT, FOREIGN_TRACE.encode()),
]


def produce(
    settings: Settings, topic: str, records: list[tuple[str, dict[str, Any], str | None]]
) -> None:
    """(key, value, own event id or None) records, in this order, acknowledged by the broker;
    each also carries forged platform headers (:data:`FORGED`)."""
    producer = Producer(producer_config(settings.kafka))
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    for key, value, event_id in records:
        headers = [*FORGED, *([("ce_id", event_id.encode())] if event_id else [])]
        producer.produce(
            topic, json.dumps(value).encode(), key=key.encode(), headers=headers,
            on_delivery=delivered,
        )  # fmt: skip
    assert producer.flush(30) == 0 and not failures, failures


def test_kafka_topic_records_reach_the_target_once_each_in_order_per_key(
    world: dict[str, Any], kafka_bootstrap: str, tmp_path: Path
) -> None:
    engine, settings = world["engine"], world["settings"]
    suffix = uuid.uuid4().hex[:8]
    topic = f"t-user-orders-{suffix}"
    create_topic(settings, topic, partitions=3)
    connector = f"kafka-{suffix}"
    kafka = store.insert_row(engine, connectors, {"name": connector, "protocol": "kafka"})
    source = store.insert_row(
        engine,
        endpoints,
        {
            "connector_id": kafka["id"],
            "name": "orders",
            "direction": "source",
            "kafka_topic": topic,
            # The user's records name their own event id in this header (CloudEvents' own).
            "config": {"event_id_header": "ce_id"},
        },
    )
    flow_id = flow_to_erp(world, source, KAFKA_TO_ERP)
    marks = end_offsets(settings, INTEGRATION_EVENTS.name)
    run = f"k{suffix}"

    def record(key: str, n: int) -> tuple[str, dict[str, Any], str | None]:
        value = {"run": run, "customer": key, "n": n, "email": f"{key}@example.com",
                 "amount": f"{n}.{n:02d}"}  # fmt: skip
        # Odd records bring their own event id; even ones get <topic>/<partition>/<offset>.
        return key, value, f"evt-{run}-{key}-{n}" if n % 2 else None

    # Interleaved keys, in order per key; half before the worker runs, half while it does.
    batches = [[record(k, n) for n in range(lo, lo + PER_KEY // 2) for k in KEYS]
               for lo in (0, PER_KEY // 2)]  # fmt: skip
    produce(settings, topic, batches[0])
    worker = worker_for(world, kafka_bootstrap, tmp_path)
    worker.start()
    try:
        worker.wait_healthy()
        # The same record sent twice (a producer retry upstream): one event id, one order.
        produce(settings, topic, [*batches[1], record(KEYS[0], 1)])
        total = len(KEYS) * PER_KEY
        wait_for(lambda: len(erp_orders(world, run)) >= total, f"{total} orders", 45)
        time.sleep(2)  # a record forwarded twice would be delivered by now
    finally:
        worker.stop()
        print(worker.log_tail())
        disable(world, flow_id)

    orders = erp_orders(world, run)
    expected = [f"{run}-{k}-{n}" for k in KEYS for n in range(PER_KEY)]
    assert Counter(o["external_id"] for o in orders) == Counter(expected)
    requests = erp_requests(world, flow_id)
    per_key = Counter(a["headers"]["idempotency-key"] for a in requests)
    assert len(per_key) == total and set(per_key.values()) == {1}, "a record was sent twice"
    assert all(a["outcome"] == "accepted" for a in requests)
    # One succeeded Run per event: the record's own id, else its coordinates on the topic.
    event_ids = succeeded_event_ids(world, flow_id)
    assert set(event_ids.values()) == {1} and len(event_ids) == total
    own = {f"evt-{run}-{k}-{n}" for k in KEYS for n in range(1, PER_KEY, 2)}
    assert own <= set(event_ids)
    assert all(e.startswith(f"{topic}/") for e in set(event_ids) - own)
    # In order per key: the ERP made each customer's orders in the order they were produced.
    for key in KEYS:
        sequence = [
            int(o["external_id"].rsplit("-", 1)[1])
            for o in orders
            if o["customer"]["email"] == f"{key}@example.com"
        ]
        assert sequence == list(range(PER_KEY)), f"{key} out of order: {sequence}"
    # Delivered where it was read: no copy went through integration.events.
    assert published_events(settings, marks, connector) == []
    # No forged platform header got through: ours replaced them, the trace was continued.
    foreign_trace_id = FOREIGN_TRACE.split("-")[1]
    made = [r for r in runs_of(world, flow_id) if r["status"] == SUCCEEDED]
    assert {r["attempt"] for r in made} == {1}  # not the forged attempt 7 (+1)
    assert {r["trace_id"] for r in made} == {foreign_trace_id}
    for request in requests:
        trace = request["headers"]["traceparent"]
        assert trace.split("-")[1] == foreign_trace_id and trace != FOREIGN_TRACE


# ---- 3. one broken endpoint never stops the others ------------------------------------------


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_broken_endpoint_configs_are_skipped_and_the_other_endpoints_keep_flowing(
    world: dict[str, Any], kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Rows written before validation existed (or by hand): a REST config whose params are
    not an object, one whose items path does not parse, a Kafka source naming a regex. The
    worker skips them, says so, stays healthy, and polls and forwards the good ones."""
    engine, settings = world["engine"], world["settings"]
    suffix = uuid.uuid4().hex[:8]
    _, good_feed, _ = feed_source(world)
    flows_made = [flow_to_erp(world, good_feed, HUBSPOT_TO_ERP)]
    for broken in ({"params": 5}, {"items_path": "changes["}):
        _, bad_feed, _ = feed_source(world, broken)
        flows_made.append(flow_to_erp(world, bad_feed, HUBSPOT_TO_ERP))

    topic = f"t-user-orders-{suffix}"
    create_topic(settings, topic, partitions=1)
    kafka = store.insert_row(engine, connectors, {"name": f"kafka-{suffix}", "protocol": "kafka"})
    for name, kafka_topic in (("orders", topic), ("everything", "^t-nothing-matches-.*")):
        source = store.insert_row(
            engine,
            endpoints,
            {"connector_id": kafka["id"], "name": name, "direction": "source",
             "kafka_topic": kafka_topic},
        )  # fmt: skip
        flows_made.append(flow_to_erp(world, source, KAFKA_TO_ERP))
    run = f"c{suffix}"
    produce(
        settings,
        topic,
        [("cust-a", {"run": run, "customer": "cust-a", "n": n, "email": "a@example.com",
                     "amount": "1.00"}, None) for n in range(3)],
    )  # fmt: skip

    worker = worker_for(world, kafka_bootstrap, tmp_path)
    worker.start()
    try:
        worker.wait_healthy()
        contacts = create_contacts(world, 3)
        wait_for(lambda: len(succeeded_event_ids(world, flows_made[0])) == 3, "3 polled", 45)
        wait_for(lambda: len(erp_orders(world, run)) == 3, "3 forwarded", 45)
        health = httpx.get(f"{worker.base}/health", timeout=5)
        metrics = worker.metrics()
    finally:
        worker.stop()
        print(worker.log_tail())
        for flow_id in flows_made:
            disable(world, flow_id)

    assert Counter(o["external_id"] for o in erp_orders(world, "hs-")) >= Counter(
        f"hs-{c}" for c in contacts
    )
    assert health.status_code == 200, health.text
    assert all(task["restarts"] == 0 for task in health.json()["tasks"].values()), health.text
    assert metric(metrics, "synapseops_source_failures_total", kind="rest",
                  reason="invalid_config") >= 2  # fmt: skip
    assert metric(metrics, "synapseops_source_failures_total", kind="kafka",
                  reason="invalid_config") >= 1  # fmt: skip
    log = worker.log_tail(200_000)
    assert "rest source endpoint skipped: invalid configuration" in log
    assert "regex subscription" in log
    # The broken feeds were never polled: every poll of the feed came from the good one.
    assert not succeeded_event_ids(world, flows_made[1])
    assert not succeeded_event_ids(world, flows_made[2])
