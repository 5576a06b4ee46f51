"""``kill -9`` of the real worker while records sit in retry tiers: nothing lost, nothing doubled.

Signed Shopify orders go through the real ingress to the integration-delivery pipeline of a
real ``synapseops worker`` process; the sandbox ERP refuses every call (503) at first,
so each order is parked in a retry tier. The worker is killed with SIGKILL twice — once while
every order waits in a tier, once while the retries are landing — and restarted with the same
consumer group. Counted by id at the sandbox: every order arrives, exactly one ERP order per
external id, and exactly one succeeded Run per delivery.
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

from api.ingress import body_digest_id
from sinks.integration.tables import SUCCEEDED
from synapseops.settings import Settings
from tests.integration.integration.world import (
    MAPPING,
    make_flow,
    order_body,
    post,
    runs_of,
    shopify_sign,
    world_context,
)
from tests.integration.worker_process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ORDERS = 30
# Long enough tiers that no order can run out of retries while the ERP refuses everything.
TIERS = "10s,20s,30s"


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    with world_context(settings, database_url) as built:
        yield built


def sandbox(world: dict[str, Any], method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(method, f"{world['sandbox'].url}{path}", timeout=10, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


def erp_attempts(world: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [
        attempt
        for attempt in sandbox(world, "GET", "/_sandbox/erp/attempts")
        if str(attempt.get("headers", {}).get("idempotency-key", "")).startswith(prefix)
    ]


def first_tries(world: dict[str, Any], prefix: str) -> set[str]:
    """Idempotency keys (one per order) the ERP has seen at least once."""
    return {a["headers"]["idempotency-key"] for a in erp_attempts(world, prefix)}


def orders_by_external_id(world: dict[str, Any], numbers: list[int]) -> Counter[str]:
    wanted = {f"shopify-{n}" for n in numbers}
    listing = sandbox(world, "GET", "/erp/api/orders", headers={"Authorization": "Bearer x"})
    return Counter(o["external_id"] for o in listing["orders"] if o["external_id"] in wanted)


def wait_for(condition: Any, what: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_kill_9_while_records_sit_in_retry_tiers_loses_nothing_and_doubles_nothing(
    world: dict[str, Any], kafka_bootstrap: str, tmp_path: Path
) -> None:
    flow_id = make_flow(world, "orders/create", json.loads(MAPPING.read_text()))
    connector = world["connector_of"][flow_id][0]
    key_prefix = f"synapseops-flow-{flow_id}-"
    database = world["settings"].database_url
    worker = WorkerProcess(
        kafka_bootstrap,
        database,
        tmp_path,
        tiers=TIERS,
        extra_env={"SYNAPSEOPS_WORKER_PIPELINES": "integration-delivery", **world["worker_env"]},
    )
    worker.start()
    try:
        worker.wait_healthy()
        # The ERP refuses everything until the first crash: every order goes to a retry tier.
        sandbox(
            world,
            "POST",
            "/_sandbox/faults",
            json={"target": "erp", "status": 503, "error_rate": 1.0},
        )
        base = 700000 + uuid.uuid4().int % 100000
        numbers = [base + n for n in range(ORDERS)]
        deliveries = {}
        for number in numbers:
            body = order_body(number)
            delivery = f"wh-{uuid.uuid4().hex}"
            response = post(
                world,
                connector,
                "orders/create",
                body,
                **{"X-Shopify-Hmac-Sha256": shopify_sign(body), "X-Shopify-Webhook-Id": delivery},
            )
            assert response.status_code == 202, response.text
            # Shopify's HMAC covers only the body: the event id is the body's digest.
            deliveries[body_digest_id(body)] = number

        # Every first try refused: the orders now sit in retry tiers, none delivered.
        wait_for(lambda: len(first_tries(world, key_prefix)) >= ORDERS, "first tries", 90)
        accepted_so_far = [a for a in erp_attempts(world, key_prefix) if a["outcome"] == "accepted"]
        assert accepted_so_far == []
        worker.kill_9()  # first crash: everything is parked in a retry tier
        sandbox(world, "DELETE", "/_sandbox/faults")  # the ERP is back

        worker.start()  # same consumer group: picks up from the committed offsets
        worker.wait_healthy()
        # Second crash while the retries are landing at the ERP.
        wait_for(
            lambda: sum(orders_by_external_id(world, numbers).values()) >= ORDERS // 3,
            "a third of the orders",
            90,
        )
        worker.kill_9()

        worker.start()
        worker.wait_healthy()
        wait_for(lambda: len(orders_by_external_id(world, numbers)) == ORDERS, "every order", 120)
        time.sleep(2)  # anything redelivered late would show up now
    finally:
        worker.stop()
        print(worker.log_tail())

    orders = orders_by_external_id(world, numbers)
    assert len(orders) == ORDERS, "an order was lost"
    assert set(orders.values()) == {1}, f"an order was doubled: {orders.most_common(3)}"

    accepted = [a for a in erp_attempts(world, key_prefix) if a["outcome"] == "accepted"]
    per_key = Counter(a["headers"]["idempotency-key"] for a in accepted)
    assert len(per_key) == ORDERS
    # Requests the ERP answered from its idempotency store after a crash (figure for the note).
    replayed = sum(1 for a in accepted if a.get("replayed"))
    print(
        f"crash test: {ORDERS} orders, {len(accepted)} accepted ERP requests "
        f"({replayed} answered as idempotent replays), 2 x kill -9"
    )

    succeeded = [r for r in runs_of(world, flow_id) if r["status"] == SUCCEEDED]
    assert Counter(r["source_event_id"] for r in succeeded) == Counter(deliveries.keys())
