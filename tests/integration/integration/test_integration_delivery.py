"""API Integration proved end to end: real uvicorn ingress, real broker, real PostgreSQL, the
sandbox ERP over HTTP, and the delivery pipeline driven through ``streams.road.process`` with
a real :class:`FailureRouter`. Each record is read back from the exact partition/offset the
ingress answered, so other traffic on the shared topics never interferes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy

from api.ingress import body_digest_id
from sinks.integration import store
from sinks.integration.tables import (
    DEAD,
    SUCCEEDED,
)
from streams.integration.commands import RerunCommand
from streams.road import Hop, Outcome, RoadRecord
from synapseops.kafka import AsyncProducer
from synapseops.settings import Settings
from tests.integration.integration.world import (
    BIG_ID,
    ERP_TOKEN,
    MAPPING,
    accepted_record,
    end_offsets,
    erp_orders,
    make_flow,
    order_body,
    post,
    read_at,
    run_through,
    runs_of,
    shopify_sign,
    world_context,
)
from topics.registry import INTEGRATION_COMMANDS, INTEGRATION_EVENTS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    with world_context(settings, database_url) as built:
        yield built


def test_signed_shopify_order_becomes_one_erp_order_exact(world: dict[str, Any]) -> None:
    flow_id = make_flow(world, "orders/create", json.loads(MAPPING.read_text()))
    connector = world["connector_of"][flow_id][0]
    body = order_body(5001)
    delivery = f"wh-{uuid.uuid4().hex}"
    headers = {"X-Shopify-Hmac-Sha256": shopify_sign(body), "X-Shopify-Webhook-Id": delivery}
    first = post(world, connector, "orders/create", body, **headers)
    record = accepted_record(world, first)
    assert record.value == body  # raw bytes, untouched
    # Shopify's HMAC covers the body only: the id is the body's digest, not the header's.
    assert dict(record.headers)["synapseops-event-id"] == body_digest_id(body).encode()

    [outcome] = run_through(world, record)
    assert outcome == Outcome("done", "1 of 1 flow(s) delivered")
    [order] = erp_orders(world, "shopify-5001")
    assert order["source_order_id"] == str(BIG_ID)
    assert order["totals"]["total"] == "409.94" and order["totals"]["tax"] == "11.94"
    assert order["lines"][0]["unit_price"] == "199.00"
    assert order["auth_scheme"] == "bearer"
    assert order["idempotency_key"].startswith(f"synapseops-flow-{flow_id}-")

    [run] = runs_of(world, flow_id)
    assert run["status"] == SUCCEEDED and run["response_status"] == 201
    assert run["source_event_id"] == body_digest_id(body) and run["mapping_version"] == 1
    assert run["request"]["headers"]["Authorization"] == "**hidden**"
    assert ERP_TOKEN not in json.dumps(run["request"]) + json.dumps(run["response"])
    with world["engine"].connect() as conn:
        stored = conn.execute(
            sqlalchemy.text("SELECT request->'body'->>'source_order_id' FROM runs WHERE id = :i"),
            {"i": run["id"]},
        ).scalar_one()
    assert stored == str(BIG_ID)

    # The same delivery id again: answered, one Run, one ERP order.
    second = post(world, connector, "orders/create", body, **headers)
    assert second.status_code == 202 and second.json()["duplicate"] is True
    # ... and the record redelivered to the pipeline (a crash, a replay) is absorbed too.
    [again] = run_through(world, record)
    assert isinstance(again, Outcome) and again.status == "skipped"
    assert len(runs_of(world, flow_id)) == 1
    assert len(erp_orders(world, "shopify-5001")) == 1


def test_wrong_signature_is_401_and_nothing_is_published(world: dict[str, Any]) -> None:
    flow_id = make_flow(world, "orders/create", json.loads(MAPPING.read_text()))
    connector = world["connector_of"][flow_id][0]
    body = order_body(5002)
    before = end_offsets(world["settings"], INTEGRATION_EVENTS.name)
    wrong = post(
        world,
        connector,
        "orders/create",
        body,
        **{
            "X-Shopify-Hmac-Sha256": shopify_sign(body, "not-the-secret"),
            "X-Shopify-Webhook-Id": "w",
        },
    )
    missing = post(world, connector, "orders/create", body, **{"X-Shopify-Webhook-Id": "w"})
    assert wrong.status_code == 401 and "does not match" in wrong.json()["detail"]
    assert missing.status_code == 401 and "missing" in missing.json()["detail"]
    assert post(world, connector, "orders/nope", body).status_code == 404
    assert post(world, "events", "a/b", body).status_code == 404
    assert end_offsets(world["settings"], INTEGRATION_EVENTS.name) == before


def test_mapping_error_dead_letters_and_a_rerun_after_the_fix_delivers_once(
    world: dict[str, Any],
) -> None:
    good = json.loads(MAPPING.read_text())
    broken = json.loads(MAPPING.read_text())
    # Rule 16 (totals.total) reads the email as money: every order fails it.
    broken["rules"][15] = {
        "target": "totals.total",
        "source": "order.email",
        "transforms": ["to_decimal"],
        "required": True,
    }
    flow_id = make_flow(world, "orders/paid", broken)
    connector, mapping_id = world["connector_of"][flow_id]
    body = order_body(5003)
    headers = {"X-Shopify-Hmac-Sha256": shopify_sign(body), "X-Shopify-Webhook-Id": "wh-5003"}
    record = accepted_record(world, post(world, connector, "orders/paid", body, **headers))

    [hop] = run_through(world, record)
    assert isinstance(hop, Hop) and hop.dead and hop.topic == "integration-delivery.dlq"
    [dead] = runs_of(world, flow_id)
    assert dead["status"] == DEAD and dead["error_class"] == "MappingFailed"
    assert dead["failed_rule"].startswith("rule 16 (totals.total): to_decimal failed on")
    assert erp_orders(world, "shopify-5003") == []

    store.save_mapping_version(world["engine"], mapping_id, good)
    command = RerunCommand(run_id=int(dead["id"]), mapping="latest", rerun_id="rr-t")
    rerun = asyncio.run(_publish_command(world["settings"], command, flow_id))

    [outcome] = run_through(world, rerun)
    assert outcome == Outcome("done", f"re-run of run {dead['id']}")
    [order] = erp_orders(world, "shopify-5003")
    assert order["totals"]["total"] == "409.94"
    after = runs_of(world, flow_id)
    assert [r["status"] for r in after] == [DEAD, SUCCEEDED]
    assert after[1]["rerun_of"] == dead["id"] and after[1]["mapping_version"] == 2
    # A second re-run of the same run finds the event delivered: still one order.
    [twice] = run_through(world, rerun)
    assert isinstance(twice, Outcome) and twice.status == "skipped"
    assert len(erp_orders(world, "shopify-5003")) == 1
    assert len(runs_of(world, flow_id)) == 2


async def _publish_command(settings: Settings, command: RerunCommand, flow_id: int) -> RoadRecord:
    producer = AsyncProducer(settings.kafka)
    try:
        partition, offset = await producer.send(
            INTEGRATION_COMMANDS.name, command.encode(), key=command.key(flow_id)
        )
    finally:
        await asyncio.to_thread(producer.close)
    return await asyncio.to_thread(read_at, settings, INTEGRATION_COMMANDS.name, partition, offset)


def test_money_in_the_erp_is_exact_decimal_text(world: dict[str, Any]) -> None:
    flow_id = make_flow(world, "orders/updated", json.loads(MAPPING.read_text()))
    connector = world["connector_of"][flow_id][0]
    body = order_body(5004)
    headers = {"X-Shopify-Hmac-Sha256": shopify_sign(body), "X-Shopify-Webhook-Id": "wh-5004"}
    run_through(
        world, accepted_record(world, post(world, connector, "orders/updated", body, **headers))
    )
    [order] = erp_orders(world, "shopify-5004")
    totals = {k: Decimal(v) for k, v in order["totals"].items()}
    assert (
        totals["subtotal"] + totals["tax"] + totals["shipping"] - totals["discount"]
        == totals["total"]
    )


def test_a_target_outside_the_allow_list_is_refused_and_never_called(
    world: dict[str, Any],
) -> None:
    from synapseops.settings import HttpSettings

    flow_id = make_flow(world, "orders/guarded", json.loads(MAPPING.read_text()))
    connector = world["connector_of"][flow_id][0]
    body = order_body(5301)
    headers = {"X-Shopify-Hmac-Sha256": shopify_sign(body), "X-Shopify-Webhook-Id": "wh-5301"}
    record = accepted_record(world, post(world, connector, "orders/guarded", body, **headers))
    # The same worker, outside dev: nothing internal is listed, so the sandbox is refused.
    guarded = world["settings"].model_copy(update={"http": HttpSettings(allowed_hosts="")})

    [hop] = run_through({**world, "settings": guarded}, record)
    assert isinstance(hop, Hop) and hop.dead
    [run] = runs_of(world, flow_id)
    assert run["status"] == DEAD and run["error_class"] == "TargetForbidden"
    assert "SYNAPSEOPS_HTTP_ALLOWED_HOSTS" in run["error"]
    assert erp_orders(world, "shopify-5301") == []
