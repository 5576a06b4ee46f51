"""The two-minute path: from the home page to a dead letter's cause, the fix (the mapping
edited with the dead letter's own payload) and the replay — timed, with a person's pauses.

The time is printed, never asserted (tests do not assert on wall time).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from playwright.sync_api import expect

from tests.e2e.browser import Console
from tests.e2e.stack import Stack, wait_for
from tests.e2e.worlds import broken_rules, flow_via_api, order, shop_and_erp
from topics.registry import INTEGRATION_DELIVERY

# What a person takes to read a cause or a preview before acting on it.
READING_MS = 2500


def test_from_home_to_the_cause_the_fix_and_the_replay_of_a_dead_letter(
    stack: Stack, console: Callable[..., Console]
) -> None:
    world = shop_and_erp(stack, uuid.uuid4().hex[:6])
    made = flow_via_api(stack, world, broken_rules())
    number = 800_000 + int(uuid.uuid4().int % 100_000)
    stack.send_shopify(world["shop"], "orders/create", order(number), world["secret"])
    letters = wait_for(
        "the order's dead letter",
        lambda: stack.get("/api/v1/dead-letters", pipeline=INTEGRATION_DELIVERY, status="dead")[
            "items"
        ],
        timeout=60,
    )
    admin = console("admin")
    page = admin.page
    reading = 0.0

    started = time.monotonic()
    admin.open("/")
    home_row = page.locator("section[aria-labelledby=dl-h] tr", has_text=INTEGRATION_DELIVERY)
    expect(home_row).to_be_visible()
    admin.shot("two-minutes-1-home")
    home_row.get_by_role("link", name=INTEGRATION_DELIVERY).click()
    newest = max(letter["id"] for letter in letters)
    page.locator(f"[data-live=table] a[href='/dead-letters/{newest}']").click()
    cause = page.locator("section[aria-label=Cause]")
    expect(cause).to_contain_text("required value missing at order.po_number")
    admin.shot("two-minutes-2-cause")
    page.wait_for_timeout(READING_MS)
    reading += READING_MS / 1000
    letter_url = page.url

    page.get_by_role("link", name="Fix the mapping with this payload").click()
    row = page.locator("#rule-rows tr", has=page.locator(".rule-target[value='order_name']"))
    expect(row).to_have_class("has-error")
    row.locator(".rule-value").fill("")
    row.locator(".rule-value").focus()
    page.locator('#sample-tree button[data-path="order.name"]').click()
    expect(page.locator("#preview-state")).to_have_text("every rule applied")
    admin.shot("two-minutes-3-fix")
    page.wait_for_timeout(READING_MS)
    reading += READING_MS / 1000
    with page.expect_navigation():
        page.click("#save-mapping")
    expect(page.locator(".callout.info")).to_contain_text("go back and replay it")

    page.get_by_role("link", name="go back and replay it").click()
    assert page.url == letter_url
    page.get_by_role("button", name="Replay").click()
    admin.confirm()
    expect(page.locator("#toast")).to_contain_text("1 sent")
    wait_for("the order in the ERP", lambda: stack.erp_orders(f"shopify-{number}"), timeout=60)
    took = time.monotonic() - started

    page.reload()
    expect(page.locator("h1 .badge")).to_have_text("replayed")
    admin.shot("two-minutes-4-replayed")
    assert made["mapping"]["id"] and len(stack.erp_orders(f"shopify-{number}")) == 1
    print(
        f"\ntwo-minute path: {took:.1f} s from the home page to the order in the ERP "
        f"({reading:.1f} s of it a person reading, {took - reading:.1f} s clicking and waiting)"
    )
