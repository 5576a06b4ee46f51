"""The compiled engine against a straightforward interpretation of the same rule JSON.

The engine compiles each rule into closures and builds an error's context only when a rule
fails; the reference below walks the raw rule JSON per record and computes every concrete path
eagerly, the obvious way. On generated mappings and payloads both must give the same output
(same values, same types, same key order) and the same errors (rule, target, message, value,
source). The reference reuses the unit-tested pieces (path and template parsing, the scalar
conversions, the transforms, ``json_equal``) and re-does everything the engine composes.
"""

from __future__ import annotations

import copy
import math
from datetime import datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from streams.mapping import compile_mapping, dump_output, json_equal, rules
from streams.mapping.paths import SourcePath, parse_source, parse_target, parse_template
from streams.mapping.payload import decimal_text, iso_text, show
from streams.mapping.scalars import TransformFailed, decimal_of, text_of
from streams.mapping.transforms import build_step

TRANSFORM = TypeAdapter(rules.Transform)


class Fail(Exception):
    def __init__(self, message: str, value: Any = None, source: str | None = None) -> None:
        super().__init__(message)
        self.message, self.value, self.source = message, value, source


def walk(data: Any, path: SourcePath) -> tuple[Any, bool]:
    """(value, found) — the obvious walk over dicts and lists."""
    for segment in path.segments:
        if (
            isinstance(segment, int)
            and isinstance(data, list)
            and -len(data) <= segment < len(data)
        ):
            data = data[segment]
        elif isinstance(segment, str) and isinstance(data, dict) and segment in data:
            data = data[segment]
        else:
            return None, False
    return data, True


def read(text: str, root: Any, item: Any) -> Any:
    path = parse_source(text)
    return walk(root if path.from_root else item, path)[0]


def holds(cond: dict[str, Any], root: Any, item: Any) -> bool:
    if "all" in cond:
        return all(holds(c, root, item) for c in cond["all"])
    if "any" in cond:
        return any(holds(c, root, item) for c in cond["any"])
    if "not" in cond:
        return not holds(cond["not"], root, item)
    value = read(cond["path"], root, item)
    if "exists" in cond:
        return (value is not None) == cond["exists"]
    if "in" in cond:
        return any(json_equal(value, option) for option in cond["in"])
    return json_equal(value, cond["eq"]) if "eq" in cond else not json_equal(value, cond["ne"])


def finish(value: Any, rule: dict[str, Any]) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = iso_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise Fail(f"{show(value)} is not a finite number", value)
    try:
        if rule.get("as") == "string":
            return text_of(value)
        if rule.get("as") == "number":
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            return value if numeric else decimal_of(value)
    except TransformFailed as exc:
        kind = rule["as"]
        raise Fail(
            f"as {kind}: {exc.reason}"
            if kind == "string"
            else f"as number: {show(value)} is {exc.reason}",
            value,
        ) from exc
    return decimal_text(value) if isinstance(value, Decimal) and rule.get("transforms") else value


def produce(rule: dict[str, Any], root: Any, item: Any, item_path: str) -> tuple[Any, str | None]:
    def where(text: str) -> str:
        return parse_source(text).below(item_path)

    if "source" in rule:
        return read(rule["source"], root, item), where(rule["source"])
    if "coalesce" in rule:
        for text in rule["coalesce"]:
            if (value := read(text, root, item)) is not None:
                return value, where(text)
        return None, where(rule["coalesce"][0])
    if "template" in rule:
        out, missing = [], []
        for part in parse_template(rule["template"]).parts:
            if isinstance(part, str):
                out.append(part)
            elif (value := read(part.text, root, item)) is None:
                missing.append("{" + part.text + "}")
            else:
                try:
                    out.append(text_of(value))
                except TransformFailed as exc:
                    raise Fail(f"template: {exc.reason} at {where(part.text)}", value) from exc
        if missing:
            raise Fail(f"template: no value for {', '.join(missing)}")
        return "".join(out), None
    if "concat" in rule:
        values = [read(text, root, item) for text in rule["concat"]["paths"]]
        try:
            texts = [text_of(value) for value in values if value is not None]
        except TransformFailed as exc:
            raise Fail(f"concat: {exc.reason}") from exc
        return rule["concat"].get("separator", "").join(texts), None
    return copy.deepcopy(rule["const"]), None


def value_of(
    rule: dict[str, Any],
    root: Any,
    item: Any,
    item_path: str,
    target: str,
    label: str,
    errors: list[tuple[Any, ...]],
) -> Any:
    if "map_array" in rule:
        spec = rule["map_array"]
        items, where = (
            read(spec["source"], root, item),
            parse_source(spec["source"]).below(item_path),
        )
        if items is None:
            return []
        if not isinstance(items, list):
            raise Fail(f"map_array needs a list at {where}", items, where)
        rows: list[dict[str, Any]] = []
        for position, element in enumerate(items):
            rows.append({})
            run(
                spec["rules"],
                root,
                element,
                f"{where}[{position}]",
                f"{target}[{position}]",
                label,
                rows[-1],
                errors,
            )
        return rows
    value, where = produce(rule, root, item, item_path)
    if value is None:
        value = copy.deepcopy(rule.get("default"))
    if value is None:
        if rule.get("required"):
            raise Fail(f"required value missing at {where or 'its source'}", None, where)
        return None
    for spec in rule.get("transforms", []):
        step = build_step(TRANSFORM.validate_python(spec))
        try:
            value = step.run(value, root, item) if step.scoped else step.run(value)
        except (TransformFailed, ValueError, ArithmeticError) as exc:
            reason = exc.reason if isinstance(exc, TransformFailed) else str(exc)
            at = f" at {where}" if where else ""
            raise Fail(f"{step.name} failed on {show(value)}{at} ({reason})", value, where) from exc
    return finish(value, rule)


def run(
    specs: list[dict[str, Any]],
    root: Any,
    item: Any,
    item_path: str,
    prefix: str,
    parent: str,
    out: dict[str, Any],
    errors: list[tuple[Any, ...]],
) -> None:
    for number, rule in enumerate(specs, start=1):
        label = f"{parent}.{number}" if parent else str(number)
        keys = parse_target(rule["target"]).keys
        target = f"{prefix}.{'.'.join(keys)}" if prefix else ".".join(keys)
        try:
            if "when" in rule and not holds(rule["when"], root, item):
                if "else" not in rule:
                    continue
                value = finish(copy.deepcopy(rule["else"]), rule)
            else:
                value = value_of(rule, root, item, item_path, target, label, errors)
        except Fail as failed:
            message = f"rule {label} ({target}): {failed.message}"
            index = int(label.split(".")[0])
            errors.append((index, label, target, message, shape(failed.value), failed.source))
            continue
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value


def reference(spec: dict[str, Any], payload: Any) -> tuple[Any, list[tuple[Any, ...]]]:
    out: dict[str, Any] = {}
    errors: list[tuple[Any, ...]] = []
    run(spec["rules"], payload, payload, "", "", "", out, errors)
    return (None if errors else out), errors


def shape(value: Any) -> Any:
    """A value with its types spelled out (``1 == True == Decimal(1)`` would hide a change)."""
    if isinstance(value, dict):
        return ("object", [(key, shape(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [shape(item) for item in value])
    return (type(value).__name__, str(value))


# --- generated mappings and payloads ----------------------------------------------------

KEYS = ["a", "b", "items", "cur", "n", "x.y"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.sampled_from(
        [
            "10",
            " 7 ",
            "1e3",
            "19.99",
            "1.005",
            "abc",
            "",
            "1_0",
            "USD",
            "jpy",
            "XAU",
            "paid",
            "2008-01-10T11:00:00-05:00",
            "2020-01-01T00:00:00",
            "Mixed Case ",
        ]
    ),
)
json_trees = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
rows = st.lists(st.dictionaries(st.sampled_from(KEYS), json_trees, max_size=4), max_size=3)
payloads = st.builds(
    lambda tree, items: {**tree, "items": items} if items is not None else tree,
    st.dictionaries(st.sampled_from(KEYS), json_trees, max_size=6),
    st.none() | rows | rows,  # mostly a list of objects, for map_array to run over
)
paths = st.sampled_from(
    [
        "a",
        "a.b",
        "items",
        "items[0].a",
        "items[-1]",
        "$.cur",
        "@",
        "@.a",
        'a["x.y"]',
        "n",
        "[0]",
        "cur",
        "$.a.b",
        "b[1].a.b",
    ]
)
constants = st.one_of(
    scalars,
    st.lists(scalars, max_size=2),
    st.dictionaries(st.sampled_from(KEYS), scalars, max_size=2),
)
transforms = st.sampled_from(
    [
        "to_int",
        "to_str",
        "to_bool",
        "upper",
        "trim",
        {"op": "split"},
        "to_decimal",
        {"op": "to_decimal", "places": 2},
        {"op": "parse_date", "format": "iso8601"},
        {"op": "format_date", "format": "iso8601", "tz": "UTC"},
        {"op": "lookup", "table": {"paid": "P", "1": {"n": 1}}, "default": "?"},
        {"op": "lookup", "table": {"paid": "P"}},
        {"op": "to_minor_units", "currency_path": "$.cur"},
        {"op": "to_minor_units", "currency": "USD"},
        {"op": "from_minor_units", "currency": "JPY"},
    ]
)
leaf_conditions = st.one_of(
    st.builds(lambda p, v: {"path": p, "eq": v}, paths, constants),
    st.builds(lambda p, v: {"path": p, "ne": v}, paths, constants),
    st.builds(lambda p, v: {"path": p, "in": v}, paths, st.lists(constants, max_size=3)),
    st.builds(lambda p, v: {"path": p, "exists": v}, paths, st.booleans()),
)
conditions = st.recursive(
    leaf_conditions,
    lambda inner: (
        st.builds(lambda c: {"all": c}, st.lists(inner, min_size=1, max_size=2))
        | st.builds(lambda c: {"any": c}, st.lists(inner, min_size=1, max_size=2))
        | st.builds(lambda c: {"not": c}, inner)
    ),
    max_leaves=3,
)
templates = st.sampled_from(["x-{a}", "{a} {n}", "{{lit}} {n}", "{items[0].a}/{$.cur}", "{@}"])
SOURCES: dict[str, st.SearchStrategy[Any]] = {
    "source": paths,
    "coalesce": st.lists(paths, min_size=1, max_size=3),
    "const": constants,
    "template": templates,
    "concat": st.builds(
        lambda p, s: {"paths": p, "separator": s},
        st.lists(paths, min_size=1, max_size=3),
        st.sampled_from(["", "-"]),
    ),
}


@st.composite
def rule_lists(draw: st.DrawFn, depth: int = 0) -> list[dict[str, Any]]:
    targets = draw(
        st.lists(
            st.sampled_from(["t", "u", "v.w", "v.z", "p.q.r"]), min_size=1, max_size=4, unique=True
        )
    )
    return [draw(one_rule(target, depth)) for target in targets]


@st.composite
def one_rule(draw: st.DrawFn, target: str, depth: int) -> dict[str, Any]:
    kinds = ["source", "coalesce", "const", "template", "concat"] + (
        ["map"] * 2 if depth < 2 else []
    )
    kind = draw(st.sampled_from(kinds))
    rule: dict[str, Any] = {"target": target}
    if kind == "map":
        source = draw(st.sampled_from(["items", "$.items", "@", "a", "items[0].items"]))
        rule["map_array"] = {"source": source, "rules": draw(rule_lists(depth + 1))}
    else:
        rule[kind] = draw(SOURCES[kind])
        if draw(st.booleans()):
            rule["transforms"] = draw(st.lists(transforms, max_size=2))
        if draw(st.integers(0, 3)) == 0:
            rule["default"] = draw(constants)
        if draw(st.integers(0, 3)) == 0:
            rule["as"] = draw(st.sampled_from(["string", "number"]))
    if draw(st.integers(0, 5)) == 0:
        rule["required"] = True
    if draw(st.integers(0, 2)) == 0:
        rule["when"] = draw(conditions)
        if draw(st.booleans()):
            rule["else"] = draw(constants)
    return rule


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_lists(), payloads)
def test_compiled_engine_equals_the_reference(specs: list[dict[str, Any]], payload: Any) -> None:
    spec = {"rules": specs}
    result = compile_mapping(spec).apply(payload)
    output, errors = reference(spec, payload)
    got = [(e.index, e.rule, e.target, e.message, shape(e.value), e.source) for e in result.errors]
    assert got == errors
    assert shape(result.output) == shape(output)
    if output is not None:
        assert dump_output(result.output) == dump_output(output)
