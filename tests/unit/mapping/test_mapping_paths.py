"""Source/target path grammar and reading."""

from __future__ import annotations

import pytest

from streams.mapping.paths import (
    MISSING,
    PathSyntaxError,
    format_segments,
    get,
    parse_source,
    parse_target,
    parse_template,
    resolve,
    set_path,
)

DATA = {
    "order": {
        "line_items": [{"price": "1.00"}, {"price": "2.00"}],
        "tags": None,
        "a.b": {"c": 1},
    }
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("order.line_items[0].price", "1.00"),
        ("order.line_items[-1].price", "2.00"),
        ("order.line_items[2].price", None),
        ("order.line_items[-3]", None),
        ('order["a.b"].c', 1),
        ("order.tags", None),
        ("order.nope.deeper", None),
        ("order.line_items.price", None),  # a key asked of a list
        ("order[0]", None),  # an index asked of a dict
    ],
)
def test_resolve(path: str, expected: object) -> None:
    assert resolve(DATA, path) == expected


def test_missing_differs_from_null() -> None:
    assert get(DATA, parse_source("order.tags").segments) is None
    assert get(DATA, parse_source("order.absent").segments) is MISSING


def test_anchors() -> None:
    assert parse_source("$.order.currency").from_root
    assert parse_source("$.order.currency").segments == ("order", "currency")
    assert parse_source("$").segments == ()
    assert parse_source("@").segments == () and not parse_source("@").from_root
    assert parse_source("price").segments == ("price",)
    assert parse_source("@.sku").segments == ("sku",) and not parse_source("@.sku").from_root
    assert parse_source("[0].sku").segments == (0, "sku")


@pytest.mark.parametrize(
    "bad", ["", "a..b", "a.", ".a", "a[x]", "a[0", "$order", "@sku", "a b", "a]", "$$"]
)
def test_bad_paths_are_refused(bad: str) -> None:
    with pytest.raises(PathSyntaxError):
        parse_source(bad)


def test_format_segments_round_trips() -> None:
    segments = ("order", "line_items", 1, "price", "service.name")
    text = format_segments(segments)
    assert text == 'order.line_items[1].price["service.name"]'
    assert parse_source(text).segments == segments
    assert format_segments(("price",), "order.line_items[1]") == "order.line_items[1].price"


def test_targets() -> None:
    assert parse_target("customer.email").keys == ("customer", "email")
    assert parse_target("lines[]").is_list and parse_target("lines[]").keys == ("lines",)
    for bad in ["a..b", "a[0]", "a[].b", "$.a", ""]:
        with pytest.raises(PathSyntaxError):
            parse_target(bad)


def test_set_path_builds_nested_dicts() -> None:
    out: dict[str, object] = {}
    set_path(out, ("customer", "email"), "x@example.com")
    set_path(out, ("customer", "name"), "X")
    assert out == {"customer": {"email": "x@example.com", "name": "X"}}


def test_template_parts() -> None:
    template = parse_template("{first_name} {{literal}} {$.order.id}")
    assert [p if isinstance(p, str) else p.text for p in template.parts] == [
        "first_name",
        " {literal} ",
        "$.order.id",
    ]
    for bad in ["{open", "close}", "{a..b}"]:
        with pytest.raises(PathSyntaxError):
            parse_template(bad)
