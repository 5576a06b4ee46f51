"""Rule JSON validation: every problem reported up front, each naming its rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.mapping import compile_mapping, mapping_json_schema
from synapseops.errors import FatalError, MappingSpecInvalid, classify


def problems(spec: Any) -> list[str]:
    with pytest.raises(MappingSpecInvalid) as caught:
        compile_mapping(spec)
    return caught.value.problems


def rules(*items: dict[str, Any]) -> dict[str, Any]:
    return {"rules": list(items)}


def test_unknown_transform_names_rule_and_target() -> None:
    spec = rules(
        {"target": "erp.id", "source": "id"},
        {"target": "erp.name", "source": "name"},
        {"target": "erp.total", "source": "total_price", "transforms": ["to_flaot"]},
    )
    assert problems(spec) == ["rule 3 (erp.total): unknown transform 'to_flaot'"]


def test_every_problem_is_reported_at_once() -> None:
    spec = rules(
        {"target": "a", "source": "x..y"},
        {"target": "b", "source": "x", "coalesce": ["y"]},
        {"target": "c", "source": "x", "transforms": [{"op": "parse_date"}], "bogus": 1},
        {"target": "d", "source": "x", "when": {"path": "x"}},
        {
            "target": "e",
            "source": "x",
            "transforms": [{"op": "format_date", "format": "iso8601", "tz": "Mars/Base"}],
        },
    )
    assert problems(spec) == [
        "rule 1 (a): source: expected a key at position 2 in 'x..y'",
        "rule 2 (b): give exactly one of source, coalesce, const, template, concat, map_array"
        " (got ['source', 'coalesce'])",
        "rule 3 (c): transforms[0]: 'format' is required",
        "rule 3 (c): unknown field 'bogus'",
        "rule 4 (d): when: a condition on a path needs exactly one of eq, ne, in, exists",
        "rule 5 (e): transforms[0].tz: unknown time zone 'Mars/Base'",
    ]


def test_nested_rules_are_labelled_with_their_parent() -> None:
    spec = rules(
        {"target": "id", "source": "id"},
        {
            "target": "lines[]",
            "map_array": {
                "source": "items",
                "rules": [
                    {"target": "sku", "source": "sku"},
                    {"target": "qty", "source": "q", "transforms": ["to_itn"]},
                ],
            },
        },
    )
    assert problems(spec) == ["rule 2.2 (qty): unknown transform 'to_itn'"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            rules({"target": "a", "source": "x"}, {"target": "a.b", "const": 1}),
            "mapping: target 'a.b' of rule 2 conflicts with target 'a' of rule 1",
        ),
        (
            rules({"target": "a", "source": "x"}, {"target": "a", "const": 1}),
            "mapping: target 'a' of rule 2 conflicts with target 'a' of rule 1",
        ),
        (
            rules({"target": "a[]", "source": "x"}),
            "rule 1 (a[]): a target ending in [] needs map_array",
        ),
        (
            rules({"target": "a", "const": 1, "when": {"all": [{"nope": 1}]}}),
            "rule 1 (a): when.all[0]: a condition needs one of path, all, any, not",
        ),
        (
            rules({"target": "a", "source": "x", "transforms": [{"op": "to_minor_units"}]}),
            "rule 1 (a): transforms[0]: give exactly one of currency, currency_path",
        ),
        (
            rules(
                {
                    "target": "a",
                    "source": "x",
                    "transforms": [{"op": "to_minor_units", "currency": "XAU"}],
                }
            ),
            "rule 1 (a): transforms[0]: currency XAU has no minor unit",
        ),
        (
            rules(
                {
                    "target": "a",
                    "source": "x",
                    "transforms": [{"op": "parse_date", "format": "isoo8601"}],
                }
            ),
            "rule 1 (a): transforms[0].format: date format 'isoo8601' is none of iso8601, unix_s,"
            " unix_ms, unix_ns and has no strftime directive",
        ),
        (
            rules({"target": "a", "template": "{first"}),
            "rule 1 (a): template: '{' at position 0 is not closed",
        ),
        (
            rules({"target": "l[]", "map_array": {"source": "x", "rules": []}}),
            "rule 1 (l[]): map_array.rules: List should have at least 1 item after validation,"
            " not 0",
        ),
        (
            rules(
                {
                    "target": "l",
                    "map_array": {"source": "x", "rules": [{"target": "a", "const": 1}]},
                    "transforms": ["upper"],
                }
            ),
            "rule 1 (l): a map_array rule takes no transforms, default or as",
        ),
        ({"rules": []}, "mapping: rules: List should have at least 1 item after validation, not 0"),
        ({"rulez": []}, "mapping: 'rules' is required"),
        ([], "mapping: must be a JSON object with a 'rules' list"),
    ],
)
def test_bad_specs(spec: Any, expected: str) -> None:
    assert expected in problems(spec)


def test_spec_errors_are_fatal_for_the_road() -> None:
    with pytest.raises(MappingSpecInvalid) as caught:
        compile_mapping({"rules": []})
    assert isinstance(caught.value, FatalError) and classify(caught.value) == "fatal"


def test_shorthand_and_long_form_compile_the_same() -> None:
    short = compile_mapping(rules({"target": "a", "source": "x", "transforms": ["upper"]}))
    long = compile_mapping(rules({"target": "a", "source": "x", "transforms": [{"op": "upper"}]}))
    assert short.spec == long.spec


def test_json_schema_describes_the_language() -> None:
    schema = mapping_json_schema()
    json.dumps(schema)  # serialisable as is
    rule = schema["$defs"]["Rule"]["properties"]
    for key in (
        "target",
        "source",
        "coalesce",
        "const",
        "template",
        "concat",
        "map_array",
        "default",
        "transforms",
        "when",
        "else",
        "required",
        "as",
    ):
        assert key in rule
    ops = {
        d["properties"]["op"].get("const")
        for d in schema["$defs"].values()
        if "op" in d.get("properties", {})
    }
    assert {"to_decimal", "parse_date", "format_date", "lookup", "to_minor_units"} <= ops
    plain = schema["$defs"]["Plain"]["properties"]["op"]["enum"]
    assert set(plain) == {"to_int", "to_float", "to_str", "to_bool", "upper", "lower", "trim"}
