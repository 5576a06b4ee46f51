"""ERP orders and the two CRM shapes over real HTTP: validation, idempotency, change feeds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.harness import SandboxServer
from tests.fixtures import SAMPLES

pytestmark = pytest.mark.integration

FIXTURES = SAMPLES
BEARER = {"Authorization": "Bearer test-token"}
SOBJECTS = "/salesforce/services/data/v60.0/sobjects"
HUBSPOT = "/hubspot/crm/v3/objects"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with SandboxServer() as sandbox, httpx.Client(base_url=sandbox.url, timeout=10) as http:
        yield http


def shopify_order() -> dict[str, Any]:
    """The real Shopify sample order mapped the way an ERP wants it (money as strings)."""
    order = json.loads((FIXTURES / "shopify/order.json").read_text())["order"]
    return {
        "external_id": f"shopify-{order['id']}",
        "currency": order["currency"],
        "customer": {"email": order["email"], "name": order["customer"]["first_name"]},
        "lines": [
            {"sku": line["sku"], "quantity": line["quantity"], "unit_price": line["price"]}
            for line in order["line_items"]
        ],
        "totals": {
            "subtotal": order["subtotal_price"],
            "tax": order["total_tax"],
            "discount": order["total_discounts"],
            "shipping": "0.00",
            "total": order["total_price"],
        },
    }


def test_erp_creates_reads_and_lists_an_order(client: httpx.Client) -> None:
    created = client.post("/erp/api/orders", json=shopify_order(), headers={"X-API-Key": "k"})
    assert created.status_code == 201
    order = created.json()
    assert order["id"].startswith("SO-")
    assert order["auth_scheme"] == "api_key"
    assert order["totals"]["total"] == "409.94"
    fetched = client.get(f"/erp/api/orders/{order['id']}", headers=BEARER).json()
    assert fetched == order
    listed = client.get("/erp/api/orders", headers=BEARER).json()
    assert listed["count"] == 1 and listed["orders"][0]["id"] == order["id"]
    (received,) = [r for r in client.get("/_sandbox/erp/received").json() if r["method"] == "POST"]
    assert received["auth_scheme"] == "api_key"


def test_erp_requires_a_credential(client: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer"}):
        response = client.post("/erp/api/orders", json=shopify_order(), headers=headers)
        assert response.status_code == 401
    assert client.get("/erp/api/orders").status_code == 401
    assert client.get("/_sandbox/erp/received").json() == []


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda o: o["lines"][0].update(unit_price=199.0), "lines[0].unit_price"),
        (lambda o: o["lines"][0].update(unit_price="19.9.9"), "lines[0].unit_price"),
        (lambda o: o["lines"][1].update(quantity=0), "lines[1].quantity"),
        (lambda o: o["lines"].clear(), "lines"),
        (lambda o: o.pop("external_id"), "external_id"),
        (lambda o: o.update(currency="dollars"), "currency"),
        (lambda o: o.update(customer={"name": "nobody"}), "customer"),
        (lambda o: o["totals"].update(total="409.95"), "totals.total"),
    ],
)
def test_erp_validation_names_the_field(client: httpx.Client, mutate: Any, field: str) -> None:
    order = shopify_order()
    mutate(order)
    response = client.post("/erp/api/orders", json=order, headers=BEARER)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_failed"
    assert field in [error["field"] for error in body["fields"]]


def test_erp_idempotency_key_returns_the_same_order(client: httpx.Client) -> None:
    headers = {**BEARER, "Idempotency-Key": "order-450789469"}
    first = client.post("/erp/api/orders", json=shopify_order(), headers=headers)
    again = client.post("/erp/api/orders", json=shopify_order(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert client.get("/erp/api/orders", headers=BEARER).json()["count"] == 1
    duplicate = client.post("/erp/api/orders", json=shopify_order(), headers=BEARER)
    assert duplicate.status_code == 409
    assert duplicate.json()["order_id"] == first.json()["id"]


def test_salesforce_create_update_get_and_upsert(client: httpx.Client) -> None:
    accounts = json.loads((FIXTURES / "crm/ebikes/Accounts.json").read_text())["records"]
    account = {k: v for k, v in accounts[0].items() if k != "attributes"}
    created = client.post(f"{SOBJECTS}/Account", json=account, headers=BEARER)
    assert created.status_code == 201
    body = created.json()
    assert body["success"] is True and body["errors"] == []
    record_id = body["id"]
    assert len(record_id) == 18 and record_id.startswith("001")

    patch = client.patch(f"{SOBJECTS}/Account/{record_id}", json={"Phone": "555"}, headers=BEARER)
    assert patch.status_code == 204
    record = client.get(f"{SOBJECTS}/Account/{record_id[:15]}", headers=BEARER).json()
    assert record["Id"] == record_id
    assert record["attributes"]["type"] == "Account"
    assert (record["Name"], record["Phone"]) == (account["Name"], "555")
    assert record["LastModifiedDate"].endswith("+0000")

    missing = client.post(f"{SOBJECTS}/Account", json={"Phone": "1"}, headers=BEARER)
    assert missing.status_code == 400
    assert missing.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    not_found = client.get(f"{SOBJECTS}/Account/001000000000000AAA", headers=BEARER)
    assert not_found.status_code == 404
    assert client.post(f"{SOBJECTS}/Account", json=account).status_code == 401

    upsert_url = f"{SOBJECTS}/Contact/External_Id__c/hs-51001"
    new = client.patch(upsert_url, json={"LastName": "Norman"}, headers=BEARER)
    same = client.patch(upsert_url, json={"Email": "bob@example.com"}, headers=BEARER)
    assert (new.status_code, new.json()["created"]) == (201, True)
    assert (same.status_code, same.json()["created"]) == (200, False)
    assert same.json()["id"] == new.json()["id"]


def test_hubspot_create_update_get_and_email_conflict(client: httpx.Client) -> None:
    props = {"email": "bob@example.com", "firstname": "Bob", "employees": 12}
    created = client.post(f"{HUBSPOT}/contacts", json={"properties": props}, headers=BEARER)
    assert created.status_code == 201
    contact = created.json()
    assert contact["id"].isdigit()
    assert contact["properties"]["employees"] == "12"
    assert contact["archived"] is False and contact["createdAt"].endswith("Z")

    updated = client.patch(
        f"{HUBSPOT}/contacts/{contact['id']}",
        json={"properties": {"lastname": "N"}},
        headers=BEARER,
    )
    assert updated.status_code == 200
    assert updated.json()["properties"]["lastname"] == "N"
    fetched = client.get(f"{HUBSPOT}/contacts/{contact['id']}", headers=BEARER).json()
    assert fetched["properties"]["firstname"] == "Bob"
    by_email = client.get(
        f"{HUBSPOT}/contacts/bob@example.com", params={"idProperty": "email"}, headers=BEARER
    )
    assert by_email.json()["id"] == contact["id"]

    conflict = client.post(f"{HUBSPOT}/contacts", json={"properties": props}, headers=BEARER)
    assert conflict.status_code == 409
    assert conflict.json()["category"] == "CONFLICT"
    assert client.get(f"{HUBSPOT}/contacts/999", headers=BEARER).status_code == 404
    assert (
        client.post(f"{HUBSPOT}/contacts", json={"email": "x"}, headers=BEARER).status_code == 400
    )


@pytest.mark.parametrize("platform", ["salesforce", "hubspot"])
def test_change_feed_lists_creates_and_updates_after_since(
    client: httpx.Client, platform: str
) -> None:
    if platform == "salesforce":
        record_id = client.post(f"{SOBJECTS}/Account", json={"Name": "A"}, headers=BEARER).json()[
            "id"
        ]
        client.patch(f"{SOBJECTS}/Account/{record_id}", json={"Name": "B"}, headers=BEARER)
    else:
        body = {"properties": {"name": "A"}}
        record_id = client.post(f"{HUBSPOT}/companies", json=body, headers=BEARER).json()["id"]
        body = {"properties": {"name": "B"}}
        client.patch(f"{HUBSPOT}/companies/{record_id}", json=body, headers=BEARER)

    feed = client.get(f"/{platform}/_changes", params={"since": 0}, headers=BEARER).json()
    assert [(c["seq"], c["op"], c["id"]) for c in feed["changes"]] == [
        (1, "created", record_id),
        (2, "updated", record_id),
    ]
    assert feed["changes"][1]["changed"] == ["name" if platform == "hubspot" else "Name"]
    assert feed["last_seq"] == 2
    later = client.get(f"/{platform}/_changes", params={"since": 2}, headers=BEARER).json()
    assert later == {"changes": [], "last_seq": 2}
