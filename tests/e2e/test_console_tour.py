"""Every console page with the demo's data: a screenshot each, and its server time printed.

The data is what ``make demo`` sends (its own client: the demo flow, two rounds of the generic
samples, Stripe payments, Shopify orders), on top of whatever the other browser tests left.
Each page's ``Server-Timing`` header is read and printed; nothing is asserted about time.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Callable

import httpx
from pydantic import SecretStr

from sandbox.traffic import DemoClient, generic_deliveries, load_samples, order_numbers
from synapseops.settings import ApiSettings, SandboxSettings, Settings, StripeSettings
from tests.e2e.browser import Console
from tests.e2e.stack import API_TOKEN, STRIPE_SECRET, Stack, wait_for
from tests.e2e.worlds import broken_rules, flow_via_api, order, shop_and_erp

PAYMENTS = 6
ORDERS = 6


def seed_demo_data(stack: Stack) -> None:
    api = httpx.URL(stack.api)
    sandbox = httpx.URL(stack.sandbox)
    settings = Settings(
        api=ApiSettings(token=SecretStr(API_TOKEN), host=api.host, port=api.port or 80),
        stripe=StripeSettings(webhook_secret=SecretStr(STRIPE_SECRET)),
        sandbox=SandboxSettings(host=sandbox.host, port=sandbox.port or 80),
    )
    rng = random.Random(14)
    with httpx.Client(timeout=20) as http:
        client = DemoClient(settings, http)
        client.ensure_flow()
        for event_id, sample in generic_deliveries(load_samples(), 2):
            assert client.send_generic(event_id, sample).status_code < 300
        for amount in [1999, 4500, 12000, 250000, 1_250_000, 7700][:PAYMENTS]:
            assert client.send_stripe(
                client.stripe_event(amount + rng.randint(0, 99))[1]
            ).is_success
        for number in itertools.islice(order_numbers(), ORDERS):
            body = client.shopify_order(number)
            assert client.send_shopify(body, f"demo-{number}").status_code < 300
    wait_for(
        "the demo's orders delivered",
        lambda: (
            sum(
                f["last_hour"]["succeeded"]
                for f in stack.get("/api/v1/flows/summary")["flows"]
                if f["name"] == "demo-shopify-orders"
            )
            >= ORDERS
        ),
        timeout=90,
    )


def test_every_page_renders_with_the_demo_data_and_its_server_time_is_printed(
    stack: Stack, console: Callable[..., Console]
) -> None:
    seed_demo_data(stack)
    if not stack.get("/api/v1/dead-letters", limit=1)["items"]:
        # One dead letter of its own, when run alone: a flow whose mapping cannot apply.
        world = shop_and_erp(stack, uuid.uuid4().hex[:6])
        flow_via_api(stack, world, broken_rules())
        stack.send_shopify(world["shop"], "orders/create", order(990_001), world["secret"])
        wait_for("a dead letter", lambda: stack.get("/api/v1/dead-letters", limit=1)["items"])
    admin = console("admin")
    flows = stack.get("/api/v1/flows")
    mappings = stack.get("/api/v1/mappings")
    run = stack.get("/api/v1/runs", limit=1)["items"][0]
    settlement = stack.get("/api/v1/settlements", limit=1)["items"][0]
    letters = stack.get("/api/v1/dead-letters", limit=1)["items"]
    multi = next((m for m in mappings if (m["latest_version"] or 0) > 1), mappings[0])
    pages = {
        "home": "/",
        "dead-letters": "/dead-letters?status=any",
        "api-integration": "/services/api-integration",
        "api-integration-flows": "/services/api-integration/flows",
        "api-integration-flow": f"/services/api-integration/flows/{flows[0]['id']}",
        "api-integration-flow-builder": "/services/api-integration/flows/new",
        "api-integration-mappings": "/services/api-integration/mappings",
        "api-integration-mapping-editor": f"/services/api-integration/mappings/{mappings[0]['id']}",
        "api-integration-mapping-diff": f"/services/api-integration/mappings/{multi['id']}/diff",
        "api-integration-runs": "/services/api-integration/runs",
        "api-integration-run": f"/services/api-integration/runs/{run['id']}",
        "api-integration-connections": "/services/api-integration/connections",
        "payment-gateway": "/services/payment-gateway",
        "payment-gateway-settlements": "/services/payment-gateway/settlements",
        "payment-gateway-settlement": "/services/payment-gateway/settlements/"
        + settlement["settlement_id"],
        "payment-gateway-failed": "/services/payment-gateway/failed",
        "payment-gateway-reconciliation": "/services/payment-gateway/reconciliation",
        "lineage": f"/lineage/{run['trace_id']}",
        "login": "/login",
    }
    if letters:
        pages["dead-letter"] = f"/dead-letters/{letters[0]['id']}"
    for name, path in pages.items():
        if name == "login":
            admin.context.clear_cookies()
        response = admin.open(path)
        assert response.status == 200, (path, response.status)
        admin.page.wait_for_load_state("networkidle")
        admin.shot(f"page-{name}")
    print("\nserver time per page (Server-Timing, demo-sized data):")
    for path, ms in sorted(admin.timings.items(), key=lambda item: -item[1]):
        print(f"  {ms:7.1f} ms  {path}")
