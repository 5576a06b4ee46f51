"""A viewer sees every page and no button that changes anything; the API refuses them anyway.

And the session is the API's principal, not a second way in: without its CSRF token a
mutating call is refused (403 with the reason), after logout the cookie is worth nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from tests.e2e.browser import PHONE, Console
from tests.e2e.stack import Stack, wait_for
from tests.e2e.worlds import broken_rules, flow_via_api, order, shop_and_erp
from topics.registry import INTEGRATION_DELIVERY


def test_a_viewer_finds_no_mutating_button_and_the_api_refuses_the_calls(
    stack: Stack, console: Callable[..., Console]
) -> None:
    world = shop_and_erp(stack, uuid.uuid4().hex[:6])
    made = flow_via_api(stack, world, broken_rules())
    stack.send_shopify(
        world["shop"], "orders/create", order(900_000 + uuid.uuid4().int % 99_999), world["secret"]
    )
    letter = wait_for(
        "a dead letter",
        lambda: stack.get("/api/v1/dead-letters", pipeline=INTEGRATION_DELIVERY, status="dead")[
            "items"
        ],
    )[0]
    payment = f"pi_e2e{uuid.uuid4().hex[:16]}"
    stack.send_stripe(payment, 2_000_000)
    waiting = wait_for(
        "a payment waiting for approval",
        lambda: [
            s
            for s in stack.get("/api/v1/settlements", payment_id=payment)["items"]
            if s["state"] == "pending_approval"
        ],
    )[0]
    run = stack.get("/api/v1/runs", flow_id=made["flow"]["id"])["items"][0]
    flow, mapping = made["flow"]["id"], made["mapping"]["id"]
    pages = [
        "/",
        "/dead-letters",
        f"/dead-letters/{letter['id']}",
        "/services/api-integration",
        "/services/api-integration/flows",
        f"/services/api-integration/flows/{flow}",
        "/services/api-integration/flows/new",
        "/services/api-integration/mappings",
        f"/services/api-integration/mappings/{mapping}",
        "/services/api-integration/runs",
        f"/services/api-integration/runs/{run['id']}",
        "/services/api-integration/connections",
        "/services/payment-gateway",
        "/services/payment-gateway/settlements",
        f"/services/payment-gateway/settlements/{waiting['settlement_id']}",
        "/services/payment-gateway/failed",
        "/services/payment-gateway/reconciliation",
        f"/lineage/{letter['trace_id']}",
    ]
    viewer = console("viewer")
    for path in pages:
        response = viewer.open(path)
        assert response.status == 200, path
        acting = viewer.page.locator("button[data-method], form[data-api], #save-mapping")
        assert acting.count() == 0, f"{path}: {acting.count()} mutating controls for a viewer"
    viewer.open(f"/services/payment-gateway/settlements/{waiting['settlement_id']}")
    viewer.shot("viewer-settlement-no-buttons")

    refused = {
        ("POST", "/api/v1/dead-letters/replay", json.dumps({"ids": [letter["id"]]})): "operator",
        ("POST", f"/api/v1/dead-letters/{letter['id']}/discard", "null"): "operator",
        ("POST", f"/api/v1/runs/{run['id']}/rerun", "{}"): "operator",
        ("POST", f"/api/v1/settlements/{waiting['settlement_id']}/approve", "{}"): "approver",
        ("PATCH", f"/api/v1/flows/{flow}", '{"enabled": false}'): "admin",
        ("POST", f"/api/v1/mappings/{mapping}/versions", '{"rules": []}'): "admin",
    }
    for (method, path, body), role in refused.items():
        answer = viewer.api(method, path, json.loads(body))
        assert answer["status"] == 403, (path, answer)
        assert f"needs role {role}" in answer["body"], answer
    preview = viewer.api(
        "POST", "/api/v1/mappings/preview", {"rules": [{"target": "a", "const": 1}], "payload": {}}
    )
    assert preview["status"] == 200, preview

    # The same call without the CSRF token is refused before any role is looked at.
    forged = viewer.api(
        "POST",
        "/api/v1/mappings/preview",
        {"rules": [{"target": "a", "const": 1}], "payload": {}},
        csrf=False,
    )
    assert forged["status"] == 403 and "CSRF" in forged["body"], forged
    assert stack.get(f"/api/v1/dead-letters/{letter['id']}")["status"] == "dead"

    phone = console("viewer", PHONE)
    phone.open("/")
    phone.shot("phone-home")
    phone.open(f"/dead-letters/{letter['id']}")
    phone.shot("phone-dead-letter")
    phone.open("/services/payment-gateway")
    phone.shot("phone-payment-gateway")

    # Logged out: the cookie the browser still holds is refused by the API.
    cookie = next(c for c in viewer.context.cookies() if c["name"] == "synapseops_session")
    viewer.page.get_by_role("button", name="Log out").click()
    viewer.page.wait_for_url("**/login")
    viewer.context.add_cookies([cookie])
    after = viewer.page.evaluate(
        "async () => (await fetch('/api/v1/overview', {credentials: 'same-origin'})).status"
    )
    assert after == 401
