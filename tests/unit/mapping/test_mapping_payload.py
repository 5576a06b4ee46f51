"""The payload codec against the standard library: ``load_payload`` decodes every body as
``json.loads(raw, parse_float=Decimal)`` does (its fast decoder is only faster), and
``dump_output`` writes what ``json.dumps`` writes, Decimals as their exact digits."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.mapping import dump_output, load_payload
from synapseops.errors import Undecodable

PROPERTY = settings(max_examples=300, deadline=None)


def reference(raw: bytes | str) -> Any:
    return json.loads(raw, parse_float=Decimal)


def shape(value: Any) -> Any:
    """Types, key order and the exact digits of every Decimal spelled out."""
    if isinstance(value, dict):
        return ("object", [(key, shape(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [shape(item) for item in value])
    if isinstance(value, Decimal):
        return ("Decimal", value.as_tuple())
    return (type(value).__name__, value)


number_literals = st.builds(
    lambda sign, whole, fraction, exponent: sign + whole + fraction + exponent,
    st.sampled_from(["", "-"]),
    st.sampled_from(["0", "7", "19", "18446744073709551617", "123456789012345678901234567890"]),
    st.sampled_from(["", ".0", ".10", ".000001", ".99999999999999999999"]),
    st.sampled_from(["", "e5", "E+2", "e-7", "e400", "E-400"]),
)
strings = st.text(st.characters(codec="utf-8"), max_size=8)
leaves = st.one_of(
    number_literals,
    strings.map(json.dumps),
    strings.map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.sampled_from(["true", "false", "null", '"\\ud800"', '"\\ud83d\\ude00"', '"\\u00e9\\n"']),
)
documents = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]")
        | st.lists(st.tuples(strings.map(json.dumps), inner), max_size=4).map(
            lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
        )
    ),
    max_leaves=15,
)


@PROPERTY
@given(documents, st.sampled_from(["", " ", "\n\t"]))
def test_load_payload_decodes_as_json_loads_does(document: str, padding: str) -> None:
    text = padding + document + padding
    for raw in (text, text.encode("utf-8", "surrogatepass")):
        assert shape(load_payload(raw)) == shape(reference(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b'\xef\xbb\xbf{"a": 1.10}',  # a UTF-8 byte order mark
        '{"a": 1.10, "b": "é"}'.encode("utf-16"),
        '{"a": [12345678901234567890123, 0.1]}'.encode("utf-32-le"),
        b'{"a": "\\ud800"}',  # a lone surrogate escape
        b'{"a": "\xed\xa0\x80"}',  # a surrogate encoded in the bytes
        b'{"a": 1, "a": 2.50}',  # a repeated key: the last one wins
    ],
)
def test_bodies_the_fast_decoder_refuses_decode_as_json_loads_does(raw: bytes) -> None:
    assert shape(load_payload(raw)) == shape(reference(raw))


@pytest.mark.parametrize(
    "raw",
    [b'{"a": 1,}', b'"a\x01b"', b"[01]", b"-", b"", b'{"a": NaN}', b"1" * 5000, b"[" * 100_000],
)
def test_what_json_loads_refuses_is_undecodable(raw: bytes) -> None:
    with pytest.raises(Undecodable):
        load_payload(raw)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | strings,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4),
    max_leaves=20,
)


@PROPERTY
@given(json_values)
def test_dump_output_writes_what_json_dumps_writes(value: Any) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert dump_output(value) == expected.encode("utf-8", "surrogatepass")


@PROPERTY
@given(documents)
def test_decoded_numbers_are_written_back_digit_for_digit(document: str) -> None:
    """A payload's numbers pass through exactly: decode, write, decode gives the same."""
    decoded = reference(document)
    try:
        written = dump_output(decoded)
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form, now as before
        return
    assert shape(reference(written)) == shape(_plain(decoded))


def _plain(value: Any) -> Any:
    """What a Decimal reads back as once written without its exponent (``1E+2`` → ``100``)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return reference(format(value, "f"))
    return value
