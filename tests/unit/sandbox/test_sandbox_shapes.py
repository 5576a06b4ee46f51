"""Pure checks of the simulated systems' shapes: ids, cards, totals, credentials."""

from __future__ import annotations

import json

import pytest

from sandbox.crm_ids import salesforce_checksum, salesforce_id, to_18
from sandbox.erp import OrderIn, check_totals
from sandbox.recorder import auth_scheme
from sandbox.slack_workspace import blocks_problem
from sandbox.teams import ADAPTIVE_CARD, teams_problem
from tests.fixtures import SAMPLES

FIXTURES = SAMPLES


def test_salesforce_checksum_marks_upper_case_positions() -> None:
    # Each 5-character chunk → a 5-bit mask of its upper-case letters → one letter/digit.
    assert salesforce_checksum("000000000000000") == "AAA"
    assert salesforce_checksum("AAAAA00000aaaaa") == "5AA"
    assert salesforce_checksum("a0000B0000000Cc") == "ABI"
    # The example usually quoted for Salesforce's 15 → 18 conversion.
    assert to_18("001A0000006Vm9r") == "001A0000006Vm9rIAC"


def test_salesforce_ids_are_18_chars_unique_and_keep_known_prefixes() -> None:
    ids = {salesforce_id("Account", n) for n in range(1, 200)}
    assert len(ids) == 199
    assert all(len(i) == 18 and i.startswith("001") for i in ids)
    assert salesforce_id("Contact", 1)[:3] == "003"
    custom = salesforce_id("Product__c", 1)
    assert custom[:2] == "a0" and custom == salesforce_id("Product__c", 1)
    assert to_18(custom[:15]) == custom


def _card() -> dict[str, object]:
    card = json.loads((FIXTURES / "notifications/adaptivecards/ExpenseReport.json").read_text())
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "content": card}]}


def test_teams_accepts_the_real_adaptive_card_fixture() -> None:
    assert teams_problem(_card()) is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.update(type="messageCard"),
        lambda m: m.update(attachments=[]),
        lambda m: m["attachments"][0].update(contentType="application/json"),
        lambda m: m["attachments"][0]["content"].update(version="1.6"),
        lambda m: m["attachments"][0]["content"].update(type="Card"),
    ],
)
def test_teams_refuses_other_shapes(mutate) -> None:  # type: ignore[no-untyped-def]
    message = _card()
    mutate(message)
    assert teams_problem(message) is not None


def test_slack_blocks_from_the_real_view_fixture_are_valid_message_blocks() -> None:
    view = json.loads((FIXTURES / "notifications/slack/view_home_002.json").read_text())
    assert blocks_problem(view["blocks"]) == []
    assert blocks_problem([{"text": "no type"}]) == [
        "[ERROR] missing required field: type [json-pointer:/blocks/0]"
    ]
    assert blocks_problem("not a list") == ["[ERROR] must be an array [json-pointer:/blocks]"]


def _order(total: str) -> OrderIn:
    return OrderIn.model_validate(
        {
            "external_id": "shopify-450789469",
            "currency": "USD",
            "customer": {"email": "bob.norman@example.com"},
            "lines": [{"sku": "IPOD2008GREEN", "quantity": 1, "unit_price": "199.00"}],
            "totals": {"subtotal": "398.00", "tax": "11.94", "shipping": "0.00", "total": total},
        }
    )


def test_order_totals_must_add_up_in_exact_decimals() -> None:
    assert check_totals(_order("409.94")) == []
    (error,) = check_totals(_order("409.95"))
    assert error["field"] == "totals.total"


@pytest.mark.parametrize(
    ("headers", "scheme"),
    [
        ({"authorization": "Bearer abc"}, "bearer"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, "basic"),
        ({"x-api-key": "k"}, "api_key"),
        ({"authorization": "Bearer "}, None),
        ({"x-api-key": " "}, None),
        ({}, None),
    ],
)
def test_auth_scheme(headers: dict[str, str], scheme: str | None) -> None:
    assert auth_scheme(headers) == scheme
