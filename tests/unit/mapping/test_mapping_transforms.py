"""Each transform through the engine: what it accepts, what it refuses, and the message."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from streams.mapping import apply_mapping, load_payload


def one(transforms: list[Any], value: Any, **rule: Any) -> Any:
    """Apply a single rule ``out <- v`` and return the output value or the error message."""
    spec = {"rules": [{"target": "out", "source": "v", "transforms": transforms, **rule}]}
    result = apply_mapping(spec, {"v": value, "cur": "JPY"})
    return result.errors[0].message if result.errors else result.output["out"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10", 10),
        (" -7 ", -7),
        (3, 3),
        (Decimal("10.0"), 10),
        ("1e3", 1000),
        (4.0, 4),
        ("1544712660300000000", 1544712660300000000),
        (2**64 + 1, 2**64 + 1),
    ],
)
def test_to_int(value: Any, expected: int) -> None:
    assert one(["to_int"], value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("10.5", "has a fractional part"),
        ("abc", "not a number"),
        (True, "a boolean is not a number"),
        ("1_000", "not a number"),
        ("NaN", "not a number"),
        ({"a": 1}, "an object is not a number"),
        ("1e999999", "outside the range"),
    ],
)
def test_to_int_refuses(value: Any, reason: str) -> None:
    message = one(["to_int"], value)
    assert message.startswith("rule 1 (out): to_int failed on ") and " at v (" in message
    assert reason in message


def test_to_float_message_names_rule_value_and_path() -> None:
    spec = {
        "rules": [
            {"target": "erp.id", "source": "id"},
            {"target": "erp.name", "source": "name"},
            {"target": "erp.total", "source": "total_price", "transforms": ["to_float"]},
        ]
    }
    result = apply_mapping(spec, {"id": 1, "name": "x", "total_price": "abc"})
    assert result.output is None
    [error] = result.errors
    assert error.message.startswith("rule 3 (erp.total): to_float failed on 'abc' at total_price")
    assert (error.index, error.rule, error.target, error.value, error.source) == (
        3,
        "3",
        "erp.total",
        "abc",
        "total_price",
    )


def test_to_float_is_the_only_float() -> None:
    assert one(["to_float"], "12.5") == 12.5 and isinstance(one(["to_float"], "12"), float)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("409.94", "409.94"),
        ("0.10", "0.10"),
        (Decimal("0.1"), "0.1"),
        (0.1, "0.1"),
        (7, "7"),
        ("1E+2", "100"),
        ("12345678901234567890.123456789", "12345678901234567890.123456789"),
    ],
)
def test_to_decimal_writes_exact_strings(value: Any, expected: str) -> None:
    assert one(["to_decimal"], value) == expected


def test_to_decimal_places_and_rounding() -> None:
    assert one([{"op": "to_decimal", "places": 2}], "2.675") == "2.68"  # half_even: 7 odd
    assert one([{"op": "to_decimal", "places": 2}], "2.665") == "2.66"
    assert one([{"op": "to_decimal", "places": 2, "rounding": "half_up"}], "2.665") == "2.67"
    assert one([{"op": "to_decimal", "places": 2, "rounding": "down"}], "2.669") == "2.66"
    big = "9" * 40 + ".5"
    assert one([{"op": "to_decimal", "places": 0}], big) == "1" + "0" * 40


def test_as_number_and_as_string() -> None:
    assert one(["to_decimal"], "1.10", **{"as": "number"}) == Decimal("1.10")
    assert one([], 12345678901234567890, **{"as": "string"}) == "12345678901234567890"
    assert one([], "42.50", **{"as": "number"}) == Decimal("42.50")
    assert "as number: 'x' is not a number" in one([], "x", **{"as": "number"})
    assert "as string: an object has no text form" in one([], {"a": 1}, **{"as": "string"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "true"), (Decimal("1E+2"), "100"), (10, "10"), (1.5, "1.5"), ("x", "x")],
)
def test_to_str(value: Any, expected: str) -> None:
    assert one(["to_str"], value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        (" yes ", True),
        ("no", False),
        (1, True),
        (0, False),
        (True, True),
    ],
)
def test_to_bool(value: Any, expected: bool) -> None:
    assert one(["to_bool"], value) is expected


def test_to_bool_refuses_other_values() -> None:
    assert "not one of true/false/1/0/yes/no" in one(["to_bool"], "maybe")
    assert "to_bool failed on 2" in one(["to_bool"], 2)


def test_string_transforms() -> None:
    assert one(["trim", "upper"], "  usd ") == "USD"
    assert one(["lower"], "Bob@Example.COM") == "bob@example.com"
    assert "upper needs a string, not an integer" in one(["upper"], 5)
    assert one([{"op": "split", "separator": ","}], "a, b,,c ") == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        ("2008-01-10T11:00:00-05:00", "iso8601", "2008-01-10T16:00:00Z"),
        ("2019-05-15T15:19:25Z", "iso8601", "2019-05-15T15:19:25Z"),
        (1557933565, "unix_s", "2019-05-15T15:19:25Z"),
        ("1557933565.25", "unix_s", "2019-05-15T15:19:25.250000Z"),
        (1557933565123, "unix_ms", "2019-05-15T15:19:25.123000Z"),
        ("1544712660300000000", "unix_ns", "2018-12-13T14:51:00.300000Z"),
        ("10/01/2008 11:00 -0500", "%d/%m/%Y %H:%M %z", "2008-01-10T16:00:00Z"),
    ],
)
def test_parse_date_to_utc(value: Any, fmt: str, expected: str) -> None:
    chain = [
        {"op": "parse_date", "format": fmt},
        {"op": "format_date", "format": "iso8601", "tz": "UTC"},
    ]
    assert one(chain, value) == expected


def test_naive_dates_need_an_explicit_zone() -> None:
    parse = {"op": "parse_date", "format": "%Y-%m-%d %H:%M"}
    utc = {"op": "format_date", "format": "iso8601", "tz": "UTC"}
    assert "no UTC offset and the rule gives no tz" in one([parse, utc], "2024-07-01 12:00")
    berlin = {**parse, "tz": "Europe/Berlin"}
    assert one([berlin, utc], "2024-07-01 12:00") == "2024-07-01T10:00:00Z"  # CEST, +02:00


def test_format_date_outputs() -> None:
    parse = {"op": "parse_date", "format": "iso8601"}
    fmt = lambda f, tz="UTC": {"op": "format_date", "format": f, "tz": tz}  # noqa: E731
    value = "2018-12-13T14:51:00.3Z"
    assert one([parse, fmt("unix_ns")], value) == 1544712660300000000
    assert one([parse, fmt("unix_ms")], value) == 1544712660300
    assert one([parse, fmt("unix_s")], value) == "1544712660.3"
    assert one([parse, fmt("iso8601", "Asia/Tokyo")], value) == "2018-12-13T23:51:00.300000+09:00"
    assert one([parse, fmt("%d.%m.%Y", "Pacific/Kiritimati")], value) == "14.12.2018"


def test_date_errors_are_rule_errors() -> None:
    iso = {"op": "parse_date", "format": "iso8601"}
    assert "parse_date failed on 1557933565 at v (a date must be a string" in one([iso], 1557933565)
    assert "parse_date failed on 'yesterday' at v (Invalid isoformat" in one([iso], "yesterday")
    assert "format_date needs a date: put parse_date before it" in one(
        [{"op": "format_date", "format": "iso8601", "tz": "UTC"}], "2020-01-01"
    )


def test_lookup() -> None:
    table = {"paid": "PAID", "1": "one", "true": "yes"}
    assert one([{"op": "lookup", "table": table}], "paid") == "PAID"
    assert one([{"op": "lookup", "table": table}], 1) == "one"
    assert one([{"op": "lookup", "table": table}], True) == "yes"
    assert one([{"op": "lookup", "table": table, "default": None}], "x") is None
    assert one([{"op": "lookup", "table": table, "strict": False}], "x") == "x"
    assert "no entry for 'x' in the table" in one([{"op": "lookup", "table": table}], "x")


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("19.99", "USD", 1999),
        ("1000", "JPY", 1000),
        ("1.234", "KWD", 1234),
        ("19.9", "usd", 1990),
        ("-0.05", "EUR", -5),
        (19, "USD", 1900),
    ],
)
def test_to_minor_units(amount: Any, currency: str, minor: int) -> None:
    assert one([{"op": "to_minor_units", "currency": currency}], amount) == minor


def test_minor_units_errors_and_overrides() -> None:
    assert "1.005 has more than 2 decimal places" in one(
        [{"op": "to_minor_units", "currency": "USD"}], "1.005"
    )
    assert "1.5 has more than 0 decimal places" in one(
        [{"op": "to_minor_units", "currency_path": "cur"}], "1.5"
    )
    # Stripe counts MGA as zero-decimal although ISO 4217 says 2.
    assert one([{"op": "to_minor_units", "currency": "MGA", "exponent": 0}], "500") == 500
    assert "no currency at nope" in one([{"op": "to_minor_units", "currency_path": "nope"}], "1")


@pytest.mark.parametrize(
    ("units", "currency", "amount"),
    [
        (190200, "usd", "1902.00"),
        (500, "JPY", "500"),
        (1234, "KWD", "1.234"),
        (-5, "EUR", "-0.05"),
        ("2000", "usd", "20.00"),
    ],
)
def test_from_minor_units(units: Any, currency: str, amount: str) -> None:
    assert one([{"op": "from_minor_units", "currency": currency}], units) == amount


def test_null_skips_transforms_and_default_fills_it() -> None:
    assert one(["to_int"], None) is None
    assert one(["to_decimal"], None, default="0.00") == "0.00"
    assert "required value missing at v" in one(["to_int"], None, required=True)


def test_load_payload_keeps_numbers_exact() -> None:
    payload = load_payload(b'{"a": 0.1, "b": 18446744073709551617, "c": 1e400}')
    assert payload == {"a": Decimal("0.1"), "b": 2**64 + 1, "c": Decimal("1e400")}
