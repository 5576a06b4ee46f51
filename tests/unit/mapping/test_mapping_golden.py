"""Golden tests: real fixture payloads through checked-in mappings, compared to checked-in
expected output (``tests/golden/<case>.mapping.json`` / ``<case>.expected.json``).

After an intended change of output, regenerate with ``UPDATE_GOLDEN=1 pytest
tests/unit/mapping/test_mapping_golden.py`` and review the diff of the ``.expected.json`` files.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any

import pytest

from streams.mapping import compile_mapping, dump_output, load_payload
from tests.fixtures import GOLDEN, SAMPLES

FIXTURES = SAMPLES

CASES = {
    "shopify_order_to_erp": "shopify/order.json",
    "github_push_to_activity": "github/push.with-new-branch.json",
    "github_push_deleted_tag": "github/push.json",
    "otel_logs_to_events": "otel/logs.json",
    "stripe_payment_succeeded_to_settlement": "stripe/events/payment_intent.succeeded.json",
}
# A case may reuse another case's mapping on a different fixture.
MAPPING_OF = {"github_push_deleted_tag": "github_push_to_activity"}


def mapped_output(case: str) -> Any:
    """The case's fixture through its mapping: the output object, before it is written."""
    spec = json.loads((GOLDEN / f"{MAPPING_OF.get(case, case)}.mapping.json").read_text())
    result = compile_mapping(spec).apply(load_payload((FIXTURES / CASES[case]).read_bytes()))
    assert result.errors == []
    return result.output


def run_case(case: str) -> bytes:
    return dump_output(mapped_output(case))


def exact(raw: bytes | str) -> Any:
    """Decode keeping numbers exact, so 1.10 vs 1.1 or a float detour would show."""
    return json.loads(raw, parse_float=Decimal)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_output(case: str) -> None:
    produced = run_case(case)
    expected_path = GOLDEN / f"{case}.expected.json"
    if os.environ.get("UPDATE_GOLDEN"):
        expected_path.write_text(json.dumps(json.loads(produced), indent=2) + "\n")
    assert exact(produced) == exact(expected_path.read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_output_is_byte_identical(case: str) -> None:
    """The exact bytes a target receives: key order, decimal digits and big ints included
    (an equal-but-reordered object or ``1.1`` for ``1.10`` would pass the test above)."""
    expected = (GOLDEN / f"{case}.expected.json").read_text()
    assert run_case(case) == dump_output(exact(expected))


def test_shopify_money_is_exact_decimal_strings() -> None:
    order = exact(run_case("shopify_order_to_erp"))
    assert order["totals"] == {
        "subtotal": "398.00",
        "tax": "11.94",
        "shipping": "0.00",
        "discount": "0.00",
        "total": "409.94",
    }
    assert [line["unit_price"] for line in order["lines"]] == ["199.00"] * 3
    assert order["total_minor_units"] == 40994
    # The ERP checks total = subtotal + tax + shipping - discount; exact strings add up.
    totals = {key: Decimal(value) for key, value in order["totals"].items()}
    assert (
        totals["subtotal"] + totals["tax"] + totals["shipping"] - totals["discount"]
        == (totals["total"])
    )


def test_shopify_created_at_is_converted_to_utc() -> None:
    order = exact(run_case("shopify_order_to_erp"))
    assert order["created_at"] == "2008-01-10T16:00:00Z"  # 11:00 at -05:00
    assert order["created_date_local"] == "2008-01-10 17:00 CET"


def test_shopify_rate_passes_as_an_exact_number() -> None:
    raw = run_case("shopify_order_to_erp")
    assert b'"rate":0.06' in raw


def test_otel_nanoseconds_above_2_pow_53_stay_exact() -> None:
    raw = run_case("otel_logs_to_events")
    record = exact(raw)["records"][0]
    assert 1544712660300000000 > 2**53
    assert record["time_unix_nano"] == 1544712660300000000
    assert b'"time_unix_nano":1544712660300000000,' in raw
    assert record["time_unix_nano_text"] == "1544712660300000000"
    assert record["observed_ns_roundtrip"] == 1544712660300000000
    assert record["time"] == "2018-12-13T14:51:00.300000Z"


def test_stripe_minor_units_become_decimal_strings() -> None:
    settlement = exact(run_case("stripe_payment_succeeded_to_settlement"))
    assert settlement["amount"] == "1902.00"
    assert settlement["amount_minor"] == 190200
    assert settlement["currency"] == "USD"
    assert settlement["paid_at"] == "2019-09-07T16:47:37Z"
