"""SaaS Notifications in the browser: a large payment asks in Slack #approvals and in the
Pending Approvals inbox; the signed link's page answers nothing on its GET; an approver
approves with a reason; the settlement is booked once and the inbox names them; a viewer
sees no button; the home page counts the approvals waiting.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import expect

from tests.e2e.browser import Console
from tests.e2e.stack import Stack, wait_for


def test_an_approver_answers_a_large_payment_in_the_inbox_once(
    stack: Stack, console: Callable[..., Console]
) -> None:
    channel = stack.post(
        "/api/v1/notification-channels",
        {"name": f"e2e-approvals-{uuid.uuid4().hex[:6]}", "kind": "slack_bot",
         "config": {"channel": "#approvals"}, "secret": "xoxb-e2e-token"},
    )  # fmt: skip
    stack.post(
        "/api/v1/notification-workflows",
        {"name": f"e2e large payments {uuid.uuid4().hex[:6]}", "trigger_kind": "large_payment",
         "spec": {"steps": [
             {"type": "wait_for_approval", "channel": channel["name"],
              "title": "Approve {{ details.payment_id }}?"},
             {"type": "notify", "channel": channel["name"],
              "title": "{{ details.payment_id }} {{ approval.decision }} by {{ approval.by }}"},
         ]}},
    )  # fmt: skip
    payment = f"pi_e2e{uuid.uuid4().hex[:16]}"
    stack.send_stripe(payment, 2_500_000)
    approval = wait_for(
        "the approval in the inbox",
        lambda: next(
            (
                a
                for a in stack.get("/api/v1/approvals", state="pending")["items"]
                if payment in a["question"]
            ),
            None,
        ),  # fmt: skip
        timeout=90,
    )
    asked = wait_for(
        "the question in #approvals",
        lambda: [
            m
            for m in httpx.get(
                f"{stack.sandbox}/_sandbox/slack/messages",
                params={"channel": "approvals"},
                timeout=10,
            ).json()
            if m["text"].startswith(f"Approve {payment}?")
        ],  # fmt: skip
    )[0]
    buttons = [b for b in asked["blocks"] if b["type"] == "actions"][0]["elements"]
    approve_link = next(b["url"] for b in buttons if b["text"]["text"] == "Approve")

    viewer = console("viewer")
    viewer.open("/services/notifications/approvals")
    expect(viewer.page.locator(".approval").first).to_be_visible()
    expect(viewer.page.get_by_role("button", name="Approve")).to_have_count(0)
    viewer.shot("notifications-approvals-viewer")

    approver = console("approver")
    approver.open("/")
    expect(approver.page.get_by_text("approvals waiting").first).to_be_visible()
    approver.shot("notifications-home-approvals-waiting")
    # The link (as Slack shows it) opens a confirmation page; the GET answered nothing.
    approver.open(urlsplit(approve_link).path)
    expect(approver.page.get_by_text("opening a link never answers")).to_be_visible()
    approver.shot("notifications-link-confirmation")
    assert stack.get(f"/api/v1/approvals/{approval['id']}")["state"] == "pending"

    approver.open("/services/notifications/approvals")
    page = approver.page
    page.fill(f"#reason-{approval['id']}", "known customer")
    approver.shot("notifications-approvals-inbox")
    page.get_by_role("button", name="Approve").first.click()
    approver.confirm()
    # The page reloads the inbox once the API took the answer.
    wait_for(
        "the settlement to settle",
        lambda: stack.get(f"/api/v1/settlements/{approval['settlement_id']}")["state"] == "settled",
        timeout=60,
    )
    answered = wait_for(
        "the inbox to show the decision",
        lambda: (
            (a := stack.get(f"/api/v1/approvals/{approval['id']}"))["state"] == "approved" and a
        ),
    )
    assert answered["answered_by"] == "user:approver" and answered["reason"] == "known customer"
    assert len(stack.ledger(payment)) == 1
    approver.open("/services/notifications/approvals?state=approved")
    expect(page.locator(".approval").first).to_contain_text("user:approver")
    approver.shot("notifications-approved")
    approver.open("/services/notifications")
    approver.shot("notifications-workflows")
