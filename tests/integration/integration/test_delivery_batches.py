"""Source events a batch at a time: one transaction each side, per-key order, the catalog
refreshed by the next batch after a change made through the API, Kafka as a flow target.

Fail on the code before issue 10: there was no batch handler (``Delivery.batch_handlers``), no
``integration_config`` version, no Kafka target (a flow to a ``kafka`` connector's endpoint
POSTed to an empty base URL), and five lookups per event plus a SAVEPOINT per Run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
import sqlalchemy

from bench.roundtrips import count_round_trips
from sinks.integration.tables import DEAD, SUCCEEDED
from streams.integration.delivery import idempotency_key
from streams.integration.kafka_target import RUN_ID_HEADER
from streams.integration.pipeline import Delivery
from streams.mapping import compile_mapping, dump_output, load_payload
from streams.road import Outcome
from synapseops.errors import SchemaInvalid
from synapseops.kafka import AsyncProducer, Outgoing
from synapseops.kafka import Delivery as KafkaDelivery
from synapseops.settings import Settings
from tests.integration.integration.batch_world import (
    event_record,
    make_kafka_flow,
    make_topic,
    read_topic,
)
from tests.integration.integration.world import (
    BIG_ID,
    MAPPING,
    erp_orders,
    make_flow,
    order_body,
    runs_of,
    world_context,
)

RULES = json.loads(MAPPING.read_text())


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    with world_context(settings, database_url) as built:
        yield built


class Driver:
    """A delivery and the one event loop its clients live on, across a test's batches."""

    def __init__(self, world: dict[str, Any], producer: AsyncProducer | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.delivery = Delivery(world["settings"], world["engine"], producer)
        self.catalog = self.delivery.catalog

    def __call__(self, records: list[Any]) -> list[Any]:
        return self.loop.run_until_complete(self.delivery.deliver_events(records))

    def close(self) -> None:
        self.loop.run_until_complete(self.delivery.aclose())
        self.loop.close()


class CountedProducer(AsyncProducer):
    """The real producer, counting the calls that produce (each one its own wait)."""

    calls = 0

    async def send(self, *args: Any, **kwargs: Any) -> tuple[int, int]:
        self.calls += 1
        return await super().send(*args, **kwargs)

    async def send_many(self, records: Sequence[Outgoing]) -> list[KafkaDelivery]:
        self.calls += 1
        return await super().send_many(records)


def _api(world: dict[str, Any]) -> httpx.Client:
    return httpx.Client(
        base_url=f"{world['api']}/api/v1", headers={"Authorization": "Bearer t"}, timeout=15
    )


def test_a_batch_is_two_transactions_whatever_its_size(world: dict[str, Any]) -> None:
    flow_id = make_flow(world, "orders/batch", RULES)
    connector = world["connector_of"][flow_id][0]
    records = [
        event_record(connector, "orders/batch", f"b-{n}", order_body(7000 + n), f"k{n % 4}", n)
        for n in range(24)
    ]
    deliver = Driver(world)
    trips = count_round_trips(world["engine"])
    answers = deliver(records)
    assert answers == [Outcome("done", "1 of 1 flow(s) delivered")] * 24
    # start: one transaction (version check + runs read + bodies + upsert); finish: one
    # UPDATE … FROM VALUES in autocommit, with no BEGIN/COMMIT of its own.
    assert trips.begins == 1 and trips.ends == 1 and trips.savepoints == 0, trips
    assert trips.statements <= 6, trips
    # The Runs' statements are driver SQL (nothing compiled per batch); the Core ones are the
    # catalog's version check and its load (a fresh Delivery's first batch).
    assert trips.core == 2, trips
    statuses = [run["status"] for run in runs_of(world, flow_id)]
    assert statuses == [SUCCEEDED] * 24
    assert all(len(erp_orders(world, f"shopify-{7000 + n}")) == 1 for n in range(24))
    # The same batch again (a redelivery after a crash): every pair found delivered, no send.
    again = deliver(records)
    assert again == [Outcome("skipped", "0 of 1 flow(s) delivered")] * 24
    assert len(runs_of(world, flow_id)) == 24
    deliver.close()


def test_a_poison_record_and_a_duplicate_in_one_batch(world: dict[str, Any]) -> None:
    flow_id = make_flow(world, "orders/mixed", RULES)
    connector = world["connector_of"][flow_id][0]
    good = event_record(connector, "orders/mixed", "m-1", order_body(7101), "k", 0)
    twin = event_record(connector, "orders/mixed", "m-1", order_body(7101), "k", 1)
    poison = event_record(connector, "orders/mixed", "m-2", order_body(7102), "k", 2)
    poison = poison.__class__(**{**poison.__dict__, "headers": poison.headers[1:]})  # no event id
    bad_body = event_record(connector, "orders/mixed", "m-3", b"not json", "k", 3)
    deliver = Driver(world)
    first, second, third, fourth = deliver([good, twin, poison, bad_body])
    assert first == Outcome("done", "1 of 1 flow(s) delivered")
    assert second == Outcome("skipped", "0 of 1 flow(s) delivered")  # found its Run
    assert isinstance(third, SchemaInvalid)
    assert isinstance(fourth, Exception) and not isinstance(fourth, Outcome)
    assert [r["status"] for r in runs_of(world, flow_id)] == [SUCCEEDED, DEAD]
    assert len(erp_orders(world, "shopify-7101")) == 1
    deliver.close()


def test_a_change_through_the_api_is_seen_by_the_next_batch(world: dict[str, Any]) -> None:
    flow_id = make_flow(world, "orders/live", RULES)
    connector, mapping_id = world["connector_of"][flow_id]
    deliver = Driver(world)
    batch = [event_record(connector, "orders/live", "l-1", order_body(7201), "k", 0)]
    assert deliver(batch)[0].status == "done"
    reloads = deliver.catalog.reloads
    # A batch with no change in between reads one number and loads nothing.
    batch = [event_record(connector, "orders/live", "l-2", order_body(7202), "k", 1)]
    assert deliver(batch)[0].status == "done"
    assert deliver.catalog.reloads == reloads
    # A poller moving an endpoint's cursor is not a configuration change.
    with world["engine"].begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE endpoints SET cursor = '7', updated_at = now()"))
    assert deliver([])[:0] == [] and deliver.catalog.reloads == reloads
    with _api(world) as api:
        changed = json.loads(MAPPING.read_text())
        changed["rules"][0] = {**changed["rules"][0]}
        saved = api.post(f"/mappings/{mapping_id}/versions", json={"rules": changed["rules"]})
        assert saved.status_code in (200, 201), saved.text
        batch = [event_record(connector, "orders/live", "l-3", order_body(7203), "k", 2)]
        assert deliver(batch)[0].status == "done"
        assert runs_of(world, flow_id)[-1]["mapping_version"] == 2
        assert api.patch(f"/flows/{flow_id}", json={"enabled": False}).status_code == 200
    batch = [event_record(connector, "orders/live", "l-4", order_body(7204), "k", 3)]
    [answer] = deliver(batch)
    assert answer.status == "skipped" and "no enabled flow" in answer.detail
    assert erp_orders(world, "shopify-7204") == []
    assert deliver.catalog.reloads == reloads + 2
    deliver.close()


def test_kafka_target_one_record_per_event_keyed_in_order(world: dict[str, Any]) -> None:
    settings = world["settings"]
    topic = make_topic(settings)
    connector, flow_id = make_kafka_flow(world, RULES, topic)
    mapping = compile_mapping(RULES)
    records = [
        event_record(connector, "orders", f"kt-{n}", _order(n), f"c{n % 3}", n) for n in range(30)
    ]
    producer = CountedProducer(settings.kafka)
    deliver = Driver(world, producer)
    assert deliver(records) == [Outcome("done", "1 of 1 flow(s) delivered")] * 30
    assert producer.calls == 1  # the batch's 30 records produced at once, awaited once
    assert deliver(records[:5])[0].status == "skipped"  # redelivered: no copy
    deliver.close()
    producer.close()
    out = read_topic(settings, topic, 30)
    assert len(out) == 30
    runs = {run["source_event_id"]: run for run in runs_of(world, flow_id)}
    by_key: dict[bytes, list[str]] = {}
    for record in out:
        event_id = record.header("synapseops-event-id").decode()  # type: ignore[union-attr]
        n = int(event_id.split("-")[1])
        expected = dump_output(mapping.apply(load_payload(_order(n))).raise_for_errors())
        assert record.value == expected
        assert record.key == str(load_payload(expected)["source_order_id"]).encode()
        assert record.header("Idempotency-Key") == idempotency_key(flow_id, event_id).encode()
        assert record.header(RUN_ID_HEADER) == str(runs[event_id]["id"]).encode()
        by_key.setdefault(record.key or b"", []).append(event_id)
        assert runs[event_id]["status"] == SUCCEEDED
        # where it landed, after the target's URL
        assert runs[event_id]["request"]["url"] == f"kafka://{record.coordinates}"
    # Three customers' orders (three source keys, three output keys), each in offset order.
    assert sorted(by_key) == sorted(str(BIG_ID + n).encode() for n in range(3))
    for events in by_key.values():
        assert events == sorted(events, key=lambda event_id: int(event_id.split("-")[1]))
        assert len(events) == 10


def _order(n: int) -> bytes:
    """Order 8000+n of entity ``n % 3`` (its id, so its output key)."""
    return order_body(8000 + n).replace(str(BIG_ID).encode(), str(BIG_ID + n % 3).encode(), 1)


def test_a_kafka_target_on_a_platform_topic_or_with_a_bad_key_is_refused(
    world: dict[str, Any],
) -> None:
    with _api(world) as api:
        made = api.post("/connectors", json={"name": "kout-refused", "protocol": "kafka"})
        assert made.status_code == 201, made.text
        base = {"connector_id": made.json()["id"], "name": "x", "direction": "target"}
        loop = api.post("/endpoints", json={**base, "kafka_topic": "integration.events"})
        assert loop.status_code == 422 and "platform or internal topic" in loop.text
        none = api.post("/endpoints", json=base)
        assert none.status_code == 422 and "needs kafka_topic" in none.text
        key = api.post(
            "/endpoints", json={**base, "kafka_topic": "erp.out", "config": {"key": "a..b"}}
        )
        assert key.status_code == 422 and "config.key" in key.text
        ok = api.post(
            "/endpoints", json={**base, "kafka_topic": "erp.out", "config": {"key": "id"}}
        )
        assert ok.status_code == 201, ok.text
