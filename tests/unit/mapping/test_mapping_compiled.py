"""What compiling buys, checked without a clock: the work of one application, counted in
Python calls, and the functions it never needs on the happy path. Plus the edges the rewrite
found: exponents beyond Decimal's range are errors, never an escaped InvalidOperation.

Wall time is noisy on a shared machine (and tests never assert on it); the number of Python
function calls an application makes is exact and repeatable, and it is what compiling a
mapping removes. ``bench/mapping.py`` prints the times.
"""

from __future__ import annotations

import copy
import json
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest

from streams.mapping import apply_mapping, compile_mapping, load_payload
from synapseops.errors import Undecodable
from tests.fixtures import GOLDEN, SAMPLES

SHOPIFY = json.loads((GOLDEN / "shopify_order_to_erp.mapping.json").read_text())
ORDER = load_payload((SAMPLES / "shopify" / "order.json").read_bytes())

# What a message, a concrete path or an excerpt of a value is made with: only a failing rule
# may need them. ``deepcopy``: a constant is shared (scalars) or copied by a JSON copier.
ERROR_CONTEXT = {"show", "below", "format_segments", "jsonable", "_concrete", "error", "deepcopy"}


@contextmanager
def calls() -> Iterator[Counter[str]]:
    """The Python functions called inside the block, by name (C functions not counted)."""
    seen: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call":
            seen[frame.f_code.co_name] += 1

    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(None)


def test_the_happy_path_builds_no_error_context() -> None:
    mapping = compile_mapping(SHOPIFY)
    with calls() as seen:
        result = mapping.apply(ORDER)
    assert result.errors == []
    assert not ERROR_CONTEXT & set(seen), {name: seen[name] for name in ERROR_CONTEXT & set(seen)}


def test_a_shopify_order_costs_a_bounded_number_of_calls() -> None:
    """24 rules, 3 line items and a tax line: the interpreting engine made 591 Python calls
    per order, the compiled one about 220 (a writer per rule, a reader per path, a function
    per transform). The bound leaves room for small changes, not for interpreting again."""
    mapping = compile_mapping(SHOPIFY)
    mapping.apply(ORDER)
    with calls() as seen:
        mapping.apply(ORDER)
    assert sum(seen.values()) <= 300, seen.most_common(10)


def test_a_failing_rule_still_names_everything() -> None:
    """The context built only on failure is the same as the one an eager engine built."""
    order = copy.deepcopy(ORDER)
    order["order"]["line_items"][1]["price"] = "abc"
    order["order"]["line_items"][2].pop("sku")
    result = compile_mapping(SHOPIFY).apply(order)
    assert [(e.rule, e.target, e.source) for e in result.errors] == [
        ("10.4", "lines[1].unit_price", "order.line_items[1].price"),
        ("10.5", "lines[1].unit_price_minor", "order.line_items[1].price"),
        ("10.1", "lines[2].sku", "order.line_items[2].sku"),
    ]
    assert result.errors[0].message == (
        "rule 10.4 (lines[1].unit_price): to_decimal failed on 'abc' at "
        "order.line_items[1].price (not a number)"
    )
    assert result.errors[2].message == (
        "rule 10.1 (lines[2].sku): required value missing at order.line_items[2].sku"
    )


def test_constants_are_not_shared_between_outputs() -> None:
    """An object constant is copied per record: mutating one output leaves the next alone."""
    mapping = compile_mapping(
        {"rules": [{"target": "meta", "const": {"tags": ["a"]}}, {"target": "n", "const": 1}]}
    )
    first = mapping.apply({}).raise_for_errors()
    first["meta"]["tags"].append("changed")
    assert mapping.apply({}).raise_for_errors() == {"meta": {"tags": ["a"]}, "n": 1}


HUGE = "1e99999999999999999999"  # a number literal whose exponent Decimal cannot hold


def test_a_body_with_an_exponent_beyond_decimal_is_undecodable() -> None:
    """It raised decimal.InvalidOperation, which is no ValueError: a 500, not a 4xx."""
    with pytest.raises(Undecodable):
        load_payload(f'{{"total": {HUGE}}}'.encode())


@pytest.mark.parametrize(
    "rule",
    [
        {"target": "x", "source": "v", "transforms": ["to_decimal"]},
        {"target": "x", "source": "v", "as": "number"},
        {"target": "x", "source": "v", "transforms": ["to_int"]},
    ],
)
def test_an_exponent_beyond_decimal_is_a_rule_error(rule: dict[str, Any]) -> None:
    """``as: number`` let InvalidOperation escape ``apply`` (which never raises for data);
    the transforms reported ``[<class 'decimal.InvalidOperation'>]`` as the reason."""
    result = apply_mapping({"rules": [rule]}, {"v": HUGE})
    assert len(result.errors) == 1
    assert result.errors[0].message.endswith(
        f"'{HUGE}' at v (outside the range of 1e-400 .. 1e400)"
    ) or (
        result.errors[0].message
        == f"rule 1 (x): as number: '{HUGE}' is outside the range of 1e-400 .. 1e400"
    )
