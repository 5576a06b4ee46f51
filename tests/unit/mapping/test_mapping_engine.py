"""Rule semantics: value sources, map_array, when/else, error collection, serialisation."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from streams.mapping import apply_mapping, compile_mapping, dump_output, load_payload
from synapseops.errors import FatalError, MappingFailed, Undecodable

ORDER = {
    "order": {
        "id": 450789469,
        "email": None,
        "currency": "USD",
        "customer": {"email": "bob@example.com", "first_name": "Bob", "last_name": "Norman"},
        "line_items": [
            {"sku": "A", "price": "199.00", "tags": ["x", "y"]},
            {"sku": "B", "price": "abc", "tags": []},
            {"sku": None, "price": "1.50", "tags": ["z"]},
        ],
        "status": "paid",
    }
}


def output(*rules: dict[str, Any], payload: Any = ORDER) -> Any:
    result = apply_mapping({"rules": list(rules)}, payload)
    assert result.errors == [], [e.message for e in result.errors]
    return result.output


def messages(*rules: dict[str, Any], payload: Any = ORDER) -> list[str]:
    return [e.message for e in apply_mapping({"rules": list(rules)}, payload).errors]


def test_dotted_targets_build_nested_output() -> None:
    assert output(
        {"target": "erp.customer.email", "source": "order.customer.email"},
        {"target": "erp.customer.id", "source": "order.id", "as": "string"},
        {"target": "erp.channel", "const": "shopify"},
    ) == {
        "erp": {"customer": {"email": "bob@example.com", "id": "450789469"}, "channel": "shopify"}
    }


def test_missing_source_is_null_and_default_replaces_it() -> None:
    assert output(
        {"target": "a", "source": "order.nope"},
        {"target": "b", "source": "order.nope", "default": "n/a"},
        {"target": "c", "source": "order.email", "default": "none"},
    ) == {"a": None, "b": "n/a", "c": "none"}


def test_coalesce_takes_the_first_present_value() -> None:
    rule = {"target": "email", "coalesce": ["order.email", "order.customer.email"]}
    assert output(rule) == {"email": "bob@example.com"}
    assert output({**rule, "coalesce": ["order.x", "order.y"], "default": "-"}) == {"email": "-"}


def test_template_and_concat() -> None:
    assert output(
        {"target": "name", "template": "{order.customer.first_name} {order.customer.last_name}"},
        {"target": "ref", "template": "{{#}}{order.id}"},
        {
            "target": "joined",
            "concat": {"paths": ["order.currency", "order.nope", "order.id"], "separator": "/"},
        },
    ) == {"name": "Bob Norman", "ref": "{#}450789469", "joined": "USD/450789469"}


def test_template_with_missing_keys_is_an_error_not_an_exception() -> None:
    assert messages({"target": "t", "template": "{a} and {b.c}"}, payload={}) == [
        "rule 1 (t): template: no value for {a}, {b.c}"
    ]


def test_map_array_relative_and_root_paths() -> None:
    spec = {
        "target": "lines[]",
        "map_array": {
            "source": "order.line_items",
            "rules": [
                {"target": "sku", "source": "sku", "default": "UNKNOWN"},
                {"target": "currency", "source": "$.order.currency"},
                {"target": "first_tag", "source": "tags[0]"},
            ],
        },
    }
    assert output(spec)["lines"] == [
        {"sku": "A", "currency": "USD", "first_tag": "x"},
        {"sku": "B", "currency": "USD", "first_tag": None},
        {"sku": "UNKNOWN", "currency": "USD", "first_tag": "z"},
    ]


@pytest.mark.parametrize("payload", [{}, {"items": []}, {"items": None}])
def test_map_array_empty_or_missing_gives_empty_list(payload: Any) -> None:
    spec = {
        "target": "lines",
        "map_array": {"source": "items", "rules": [{"target": "a", "source": "a"}]},
    }
    assert output(spec, payload=payload) == {"lines": []}


def test_map_array_of_scalars_with_the_item_itself() -> None:
    spec = {
        "target": "tags[]",
        "map_array": {
            "source": "order.line_items[0].tags",
            "rules": [{"target": "name", "source": "@", "transforms": ["upper"]}],
        },
    }
    assert output(spec) == {"tags": [{"name": "X"}, {"name": "Y"}]}


def test_nested_map_array_errors_name_the_item() -> None:
    spec = {
        "target": "lines[]",
        "map_array": {
            "source": "order.line_items",
            "rules": [
                {"target": "sku", "source": "sku", "required": True},
                {"target": "price", "source": "price", "transforms": ["to_decimal"]},
            ],
        },
    }
    result = apply_mapping({"rules": [spec]}, ORDER)
    assert [(e.rule, e.target, e.source, e.value) for e in result.errors] == [
        ("1.2", "lines[1].price", "order.line_items[1].price", "abc"),
        ("1.1", "lines[2].sku", "order.line_items[2].sku", None),
    ]
    assert result.errors[0].message == (
        "rule 1.2 (lines[1].price): to_decimal failed on 'abc' at order.line_items[1].price"
        " (not a number)"
    )


def test_map_array_over_a_non_list_is_an_error() -> None:
    spec = {
        "target": "l",
        "map_array": {"source": "order.customer", "rules": [{"target": "a", "const": 1}]},
    }
    assert messages(spec) == ["rule 1 (l): map_array needs a list at order.customer"]


@pytest.mark.parametrize(
    ("when", "applies"),
    [
        ({"path": "order.currency", "eq": "USD"}, True),
        ({"path": "order.currency", "ne": "USD"}, False),
        ({"path": "order.status", "in": ["paid", "refunded"]}, True),
        ({"path": "order.email", "exists": True}, False),  # null does not exist
        ({"path": "order.email", "exists": False}, True),
        ({"path": "order.id", "eq": 450789469.0}, True),  # numbers compare exactly
        ({"path": "order.id", "eq": "450789469"}, False),  # a string is not a number
        (
            {
                "all": [
                    {"path": "order.currency", "eq": "USD"},
                    {"path": "order.nope", "exists": True},
                ]
            },
            False,
        ),
        (
            {
                "any": [
                    {"path": "order.currency", "eq": "EUR"},
                    {"path": "order.status", "eq": "paid"},
                ]
            },
            True,
        ),
        ({"not": {"path": "order.currency", "eq": "USD"}}, False),
    ],
)
def test_when(when: dict[str, Any], applies: bool) -> None:
    rule = {"target": "flag", "const": "yes", "when": when}
    assert output(rule) == ({"flag": "yes"} if applies else {})
    assert output({**rule, "else": "no"}) == {"flag": "yes" if applies else "no"}


def test_true_is_not_one_in_conditions() -> None:
    rule = {"target": "x", "const": 1, "when": {"path": "v", "eq": 1}}
    assert output(rule, payload={"v": True}) == {}
    assert output(rule, payload={"v": Decimal("1.0")}) == {"x": 1}


def test_all_rule_errors_are_collected_in_one_pass() -> None:
    result = apply_mapping(
        {
            "rules": [
                {
                    "target": "a",
                    "source": "order.line_items[1].price",
                    "transforms": ["to_decimal"],
                },
                {"target": "b", "source": "order.id"},
                {"target": "c", "source": "order.currency", "transforms": ["to_int"]},
                {"target": "d", "template": "{nope}"},
            ]
        },
        ORDER,
    )
    assert [e.index for e in result.errors] == [1, 3, 4]
    assert result.output is None and not result.ok
    with pytest.raises(MappingFailed) as caught:
        result.raise_for_errors()
    assert isinstance(caught.value, FatalError) and len(caught.value.errors) == 3
    assert all(isinstance(json.dumps(e.to_dict()), str) for e in result.errors)


def test_output_does_not_alias_constants_or_the_spec() -> None:
    mapping = compile_mapping({"rules": [{"target": "meta", "const": {"tags": []}}]})
    first = mapping.apply({}).output
    assert first is not None
    first["meta"]["tags"].append("mutated")
    assert mapping.apply({}).output == {"meta": {"tags": []}}


def test_apply_is_deterministic_and_leaves_the_payload_alone() -> None:
    payload = json.loads(json.dumps(ORDER))
    mapping = compile_mapping(
        {
            "rules": [
                {
                    "target": "lines[]",
                    "map_array": {
                        "source": "order.line_items",
                        "rules": [{"target": "sku", "source": "sku", "transforms": ["to_str"]}],
                    },
                },
            ]
        }
    )
    assert mapping.apply(payload) == mapping.apply(payload)
    assert payload == ORDER


def test_dump_output_keeps_numbers_exact() -> None:
    out = output(
        {"target": "money", "source": "p", "transforms": ["to_decimal"]},
        {"target": "exact", "source": "p", "transforms": ["to_decimal"], "as": "number"},
        {"target": "passthrough", "source": "rate"},
        {"target": "big", "source": "big"},
        payload=load_payload(b'{"p": "0.10", "rate": 0.06, "big": 18446744073709551617}'),
    )
    assert dump_output(out) == (
        b'{"money":"0.10","exact":0.10,"passthrough":0.06,"big":18446744073709551617}'
    )


def test_dump_output_refuses_non_json() -> None:
    with pytest.raises(ValueError):
        dump_output({"x": Decimal("NaN")})
    with pytest.raises(ValueError):
        dump_output({"x": float("inf")})
    assert dump_output({"é": "ü", "l": [1, None, True]}) == '{"é":"ü","l":[1,null,true]}'.encode()


@pytest.mark.parametrize("raw", [b"{", b"NaN", b'{"a": Infinity}', b"\xff\xfe"])
def test_load_payload_refuses_non_json(raw: bytes) -> None:
    with pytest.raises(Undecodable):
        load_payload(raw)
