"""API Integration in the browser: a mapping written in the editor with its live preview, a
Shopify → ERP flow built in the flow builder, a signed order, its Run with request/response.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from tests.e2e.browser import Console
from tests.e2e.stack import Stack, wait_for
from tests.e2e.worlds import ORDER, order, shop_and_erp

LINES = {
    "source": "order.line_items",
    "rules": [
        {"target": "sku", "source": "sku", "required": True},
        {"target": "quantity", "source": "quantity", "transforms": ["to_int"]},
        {
            "target": "unit_price",
            "source": "price",
            "transforms": [{"op": "to_decimal", "places": 2}],
        },
    ],
}
MONEY = '{"transforms": ["to_decimal"], "default": "0.00"}'


def add_rule(person: Console, target: str, kind: str, value: str, options: str = "") -> Any:
    page = person.page
    page.click("#add-rule")
    row = page.locator("#rule-rows tr").last
    row.locator(".rule-target").fill(target)
    row.locator(".rule-kind").select_option(kind)
    row.locator(".rule-value").fill(value)
    if options:
        row.locator(".rule-options").fill(options)
    return row


def write_mapping(person: Console, name: str, sample: bytes) -> int:
    """Rules typed as rows, paths picked from the sample's tree, the preview read back."""
    page = person.page
    person.open("/services/api-integration/mappings/new")
    page.fill("#mapping-name", name)
    page.fill("#sample", sample.decode())
    add_rule(person, "external_id", "template", "shopify-{order.order_number}")
    # a path picked from the sample's tree (the row's target is named after it)
    page.click("#add-rule")
    page.locator('#sample-tree button[data-path="order.currency"]').click()
    add_rule(person, "customer.email", "coalesce", "order.email, order.customer.email")
    add_rule(person, "lines[]", "map_array", json.dumps(LINES))
    add_rule(person, "totals.subtotal", "source", "order.subtotal_price", MONEY)
    add_rule(person, "totals.tax", "source", "order.total_tax", MONEY)
    add_rule(person, "totals.shipping", "source", "order.shipping_lines[0].price", MONEY)
    add_rule(person, "totals.discount", "source", "order.total_discounts", MONEY)
    # a required value the sample lacks: the error shows on its own row, live
    total = add_rule(
        person,
        "totals.total",
        "source",
        "order.grand_total",
        '{"required": true, "transforms": ["to_decimal"]}',
    )
    expect(total).to_have_class(re.compile("has-error"))
    expect(total.locator(".rule-error")).to_contain_text("required value missing")
    person.shot("integration-mapping-editor-error")
    # fixed by picking the right field from the tree
    total.locator(".rule-value").fill("")
    total.locator(".rule-value").focus()
    page.locator('#sample-tree button[data-path="order.total_price"]').click()
    expect(page.locator("#preview-state")).to_have_text("every rule applied")
    preview = json.loads(page.locator("#preview-output").inner_text())
    assert preview["external_id"] == "shopify-1001" and preview["currency"] == "USD"
    assert preview["totals"] == {
        "subtotal": "398.00",
        "tax": "11.94",
        "shipping": "0.00",
        "discount": "0.00",
        "total": "409.94",
    }, preview
    assert [line["sku"] for line in preview["lines"]] == [
        "IPOD2008GREEN",
        "IPOD2008RED",
        "IPOD2008BLACK",
    ]
    person.shot("integration-mapping-editor")
    with page.expect_navigation(url=re.compile(r"/mappings/\d+\?version=1")):
        page.click("#save-mapping")
    return int(re.search(r"/mappings/(\d+)", page.url).group(1))  # type: ignore[union-attr]


def pick(person: Console, select: str, text: str) -> None:
    """Choose the option of ``select`` whose label contains ``text``."""
    option = person.page.locator(f"select[name={select}] option", has_text=text).first
    person.page.select_option(f"select[name={select}]", value=option.get_attribute("value"))


def build_flow(person: Console, world: dict[str, Any], mapping_id: int) -> int:
    page = person.page
    person.open(f"/services/api-integration/flows/new?mapping_id={mapping_id}")
    page.fill("input[name=name]", f"orders-{world['suffix']}")
    pick(person, "source_endpoint_id", f"{world['shop']} / orders/create")
    pick(person, "target_endpoint_id", f"{world['erp']} / orders")
    pick(person, "credential_id", f"erp-token-{world['suffix']}")
    person.shot("integration-flow-builder")
    with page.expect_navigation(url=re.compile(r"/flows/\d+$")):
        page.click("form[data-api] button[type=submit]")
    return int(page.url.rsplit("/", 1)[1])


def test_a_flow_built_in_the_console_delivers_an_order_whose_run_shows_request_and_response(
    stack: Stack, console: Callable[..., Console]
) -> None:
    world = shop_and_erp(stack, uuid.uuid4().hex[:6])
    admin = console("admin")
    mapping_id = write_mapping(admin, f"shop-to-erp-{world['suffix']}", ORDER)
    flow_id = build_flow(admin, world, mapping_id)
    admin.shot("integration-flow")

    number = 700_000 + int(uuid.uuid4().int % 100_000)
    stack.send_shopify(world["shop"], "orders/create", order(number), world["secret"])

    admin.open(f"/services/api-integration/runs?flow_id={flow_id}")
    page = admin.page
    # The table refreshes itself (a live fragment): no reload.
    expect(page.locator("[data-live=table] .badge.succeeded").first).to_be_visible(timeout=60_000)
    admin.shot("integration-runs")
    page.locator("[data-live=table] tbody tr a").first.click()
    expect(page.locator("[data-request]")).to_contain_text("**hidden**")
    expect(page.locator("[data-request]")).to_contain_text(f"shopify-{number}")
    expect(page.locator("#res-h")).to_contain_text("HTTP 201")
    expect(page.locator("[data-response]")).to_contain_text('"id": "SO-')
    admin.shot("integration-run")
    assert len(stack.erp_orders(f"shopify-{number}")) == 1

    admin.open("/services/api-integration")
    expect(page.get_by_role("link", name=f"orders-{world['suffix']}")).to_be_visible()
    admin.shot("integration-dashboard")
    wait_for(
        "the flow's runs in the summary",
        lambda: any(
            f["flow_id"] == flow_id and f["last_hour"]["succeeded"] == 1
            for f in stack.get("/api/v1/flows/summary")["flows"]
        ),
    )
