"""Properties of the mapping engine over generated inputs (hypothesis)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.mapping import apply_mapping, compile_mapping, dump_output, load_payload
from streams.mapping.money import ISO_4217_EXPONENTS, currency_exponent
from streams.mapping.paths import MISSING, format_segments, get, parse_source
from synapseops.errors import MappingSpecInvalid

# Per test, not a global profile: other suites in the same run keep their own settings.
PROPERTY = settings(max_examples=150, deadline=None)

keys = st.text(st.characters(codec="utf-8", exclude_characters='\\"'), min_size=1, max_size=8)
scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD", "CLF", "usd", *ISO_4217_EXPONENTS])


@st.composite
def doc_and_path(draw: st.DrawFn) -> tuple[Any, tuple[str | int, ...], Any]:
    """A nested document, a path that exists in it, and the value at that path."""
    doc = draw(json_values)
    node, segments = doc, []
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        if isinstance(node, dict):
            key = draw(st.sampled_from(sorted(node)))
            segments.append(key)
        else:
            key = draw(st.integers(-len(node), len(node) - 1))
            segments.append(key)
        node = node[key]
    return doc, tuple(segments), node


@PROPERTY
@given(doc_and_path())
def test_get_finds_what_is_there_through_the_path_text(case: tuple[Any, Any, Any]) -> None:
    doc, segments, value = case
    text = format_segments(segments) or "@"
    parsed = parse_source(text)
    assert parsed.segments == segments
    assert get(doc, parsed.segments) == value


@PROPERTY
@given(json_values, st.lists(keys | st.integers(-5, 5), min_size=1, max_size=5))
def test_get_never_raises(doc: Any, segments: list[str | int]) -> None:
    expected: Any = doc
    for segment in segments:  # the obvious walk, as an oracle
        if isinstance(segment, int) and isinstance(expected, list):
            if not -len(expected) <= segment < len(expected):
                expected = MISSING
                break
            expected = expected[segment]
        elif isinstance(segment, str) and isinstance(expected, dict) and segment in expected:
            expected = expected[segment]
        else:
            expected = MISSING
            break
    assert get(doc, segments) == expected or get(doc, segments) is expected is MISSING


amounts = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**15), max_value=10**15)


@PROPERTY
@given(amounts, currencies)
def test_minor_units_round_trip(amount: Decimal, currency: str) -> None:
    exponent = currency_exponent(currency)
    amount = amount.quantize(Decimal(1).scaleb(-exponent))
    spec = {
        "rules": [
            {
                "target": "minor",
                "source": "a",
                "transforms": [{"op": "to_minor_units", "currency": currency}],
            },
            {
                "target": "back",
                "source": "a",
                "transforms": [
                    {"op": "to_minor_units", "currency": currency},
                    {"op": "from_minor_units", "currency": currency},
                ],
            },
        ]
    }
    result = apply_mapping(spec, {"a": str(amount)})
    assert result.errors == []
    assert result.output is not None
    assert result.output["minor"] == int(amount.scaleb(exponent))
    back = Decimal(result.output["back"])
    assert back == amount and back.as_tuple().exponent == -exponent


@PROPERTY
@given(st.lists(json_values, max_size=12))
def test_map_array_preserves_length_and_order(items: list[Any]) -> None:
    spec = {
        "rules": [
            {
                "target": "out[]",
                "map_array": {
                    "source": "items",
                    "rules": [{"target": "item", "source": "@"}, {"target": "n", "source": "$.n"}],
                },
            }
        ]
    }
    result = apply_mapping(spec, {"items": items, "n": 1})
    assert result.output == {"out": [{"item": item, "n": 1} for item in items]}


@PROPERTY
@given(st.text(max_size=30), st.dictionaries(keys, scalars | st.lists(scalars), max_size=4))
def test_template_never_raises(template: str, payload: dict[str, Any]) -> None:
    try:
        mapping = compile_mapping({"rules": [{"target": "t", "template": template}]})
    except MappingSpecInvalid:  # a bad template is refused at compile time, not applied
        return
    result = mapping.apply(payload)
    assert (result.output is None) == bool(result.errors)
    if result.errors:
        assert result.errors[0].message.startswith("rule 1 (t): template: ")


exact_decimals = st.integers(0, 12).flatmap(
    lambda places: st.decimals(
        allow_nan=False, allow_infinity=False, places=places, min_value=-(10**30), max_value=10**30
    )
)


@PROPERTY
@given(exact_decimals)
def test_to_decimal_has_no_float_drift(amount: Decimal) -> None:
    raw = (
        json.dumps({"s": format(amount, "f")}).encode()[:-1]
        + b', "n": '
        + format(amount, "f").encode()
        + b"}"
    )
    spec = {
        "rules": [
            {"target": "s", "source": "s", "transforms": ["to_decimal"]},
            {"target": "n", "source": "n", "transforms": ["to_decimal"], "as": "number"},
        ]
    }
    result = apply_mapping(spec, load_payload(raw))
    assert result.errors == []
    assert result.output is not None
    assert Decimal(result.output["s"]) == amount and result.output["s"] == format(amount, "f")
    assert json.loads(dump_output(result.output), parse_float=Decimal)["n"] == amount


@PROPERTY
@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_large_integers_stay_exact(number: int) -> None:
    spec = {
        "rules": [
            {"target": "i", "source": "s", "transforms": ["to_int"]},
            {"target": "s", "source": "i", "transforms": ["to_str"]},
            {"target": "d", "source": "s", "transforms": ["to_decimal"]},
        ]
    }
    result = apply_mapping(spec, load_payload(json.dumps({"s": str(number), "i": number})))
    assert result.output == {"i": number, "s": str(number), "d": str(number)}
    assert json.loads(dump_output(result.output))["i"] == number


@PROPERTY
@given(json_values, exact_decimals)
def test_dump_output_round_trips(value: Any, number: Decimal) -> None:
    document = {"value": value, "number": number}
    assert json.loads(dump_output(document), parse_float=Decimal) == document
