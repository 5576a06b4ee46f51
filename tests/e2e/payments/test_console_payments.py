"""Payment Gateway in the browser: finance down → the settlement is dead-lettered → Replay
once finance is back → settled exactly once; a large payment approved by an approver.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from playwright.sync_api import expect

from tests.e2e.browser import Console
from tests.e2e.stack import Stack, wait_for
from topics.registry import PAYMENT_SETTLEMENT


def settlement_of(stack: Stack, payment_id: str) -> dict[str, object] | None:
    items = stack.get("/api/v1/settlements", payment_id=payment_id)["items"]
    return items[0] if items else None


def test_a_settlement_dead_lettered_while_finance_was_down_is_replayed_and_settled_once(
    stack: Stack, console: Callable[..., Console]
) -> None:
    operator = console("operator")
    payment = f"pi_e2e{uuid.uuid4().hex[:16]}"
    stack.fault("finance", error_rate=1.0, status=503)
    try:
        stack.send_stripe(payment, 4500)
        letter = wait_for(
            "the payment's dead letter",
            lambda: stack.get("/api/v1/dead-letters", pipeline=PAYMENT_SETTLEMENT, key=payment)[
                "items"
            ],
            timeout=90,
        )[0]
        operator.open("/services/payment-gateway/failed")
        row = operator.page.locator(
            f"[data-live=dead] tr:has(a[href='/dead-letters/{letter['id']}'])"
        )
        expect(row).to_be_visible()
        expect(row).to_contain_text(letter["error_class"])
        operator.shot("payments-failed-dead-letters")
    finally:
        stack.clear_faults("finance")
    assert stack.ledger(payment) == []

    row.get_by_role("button", name="Replay").click()
    expect(operator.page.locator("#toast")).to_contain_text("1 sent")
    settled = wait_for(
        "the replayed settlement to settle",
        lambda: (s := settlement_of(stack, payment)) and s["state"] == "settled" and s,
        timeout=60,
    )
    assert len(stack.ledger(payment)) == 1, "settled exactly once"
    # Replaying again changes nothing: the row is no longer dead, the booking idempotent.
    again = operator.api("POST", "/api/v1/dead-letters/replay", {"ids": [letter["id"]]})
    assert again["status"] == 200 and '"replayed":0' in again["body"].replace(" ", "")
    assert len(stack.ledger(payment)) == 1

    operator.open(f"/services/payment-gateway/settlements/{settled['settlement_id']}")
    page = operator.page
    expect(page.locator("h2").first).to_contain_text("settled")
    expect(page.get_by_text(str(settled["finance_reference"])).first).to_be_visible()
    expect(page.locator("details summary", has_text="HTTP 503").first).to_be_visible()
    operator.shot("payments-settlement-audit-trail")
    operator.open(f"/lineage/{settled['trace_id']}")
    expect(page.get_by_role("heading", name=re.compile("Effects"))).to_be_visible()
    expect(page.get_by_text(str(settled["finance_reference"])).first).to_be_visible()
    operator.shot("lineage-ledger-entry")


def test_an_approver_approves_a_large_payment_and_the_trail_names_them(
    stack: Stack, console: Callable[..., Console]
) -> None:
    payment = f"pi_e2e{uuid.uuid4().hex[:16]}"
    stack.send_stripe(payment, 1_250_000)
    waiting = wait_for(
        "the payment to wait for approval",
        lambda: (s := settlement_of(stack, payment)) and s["state"] == "pending_approval" and s,
    )
    approver = console("approver")
    approver.open("/")
    expect(approver.page.locator("#ap-h")).to_be_visible()
    approver.open(f"/services/payment-gateway/settlements/{waiting['settlement_id']}")
    page = approver.page
    page.fill("#reason", "checked with the customer")
    approver.shot("payments-approval")
    page.get_by_role("button", name="Approve").click()
    approver.confirm()
    expect(page.locator("#toast")).to_contain_text("Approval sent")
    wait_for(
        "the approved payment to settle",
        lambda: (s := settlement_of(stack, payment)) and s["state"] == "settled",
        timeout=60,
    )
    approver.open(f"/services/payment-gateway/settlements/{waiting['settlement_id']}")
    expect(page.locator("dl.facts")).to_contain_text("approve by user:approver")
    expect(page.locator(".timeline")).to_contain_text("approved by user:approver")
    assert len(stack.ledger(payment)) == 1
    approver.shot("payments-approved")
