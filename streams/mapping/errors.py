"""What goes wrong in a mapping, said so that a person can fix the rule.

Two moments, two shapes:

- compiling (:func:`streams.mapping.compile_mapping`): the rule JSON is wrong →
  :class:`MappingSpecInvalid` with one line per problem, e.g.
  ``rule 3 (erp.total): unknown transform 'to_flaot'``;
- applying: a payload does not fit a rule → a :class:`RuleError` per failed rule, all of them
  collected in one pass, e.g. ``rule 3 (erp.total): to_float failed on 'abc' at total_price``.

Both are :class:`synapseops.errors.FatalError` when raised: the same payload and the same
mapping fail the same way on every retry, so the road dead-letters the event at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from streams.mapping.payload import jsonable


@dataclass(frozen=True, slots=True)
class RuleError:
    """One rule that failed on one payload.

    ``index`` is the 1-based position of the top-level rule; ``rule`` is the label shown in
    messages (``"5.2"``: the 2nd rule inside the ``map_array`` of rule 5); ``target`` is the
    concrete output field (``erp.lines[1].unit_price``) and ``source`` the concrete input
    path (``order.line_items[1].price``) when one path supplied the value.
    """

    index: int
    rule: str
    target: str
    message: str
    value: Any = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (Decimals and dates as strings) for APIs, Runs and dead letters."""
        return {
            "index": self.index,
            "rule": self.rule,
            "target": self.target,
            "message": self.message,
            "value": jsonable(self.value),
            "source": self.source,
        }


def spec_problems(raw: Any, exc: ValidationError) -> list[str]:
    """Translate pydantic's errors into ``rule N (target): field: problem`` lines."""
    return [_problem(raw, error) for error in exc.errors(include_url=False)]


def _problem(raw: Any, error: Mapping[str, Any]) -> str:
    loc = list(error["loc"])
    label, target, node = "", "", raw
    # Peel "rules", i (and "map_array", "rules", j below it) into the rule label "i.j".
    while len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        number = loc[1]
        rules = node.get("rules") if isinstance(node, Mapping) else None
        node = rules[number] if isinstance(rules, list) and number < len(rules) else None
        label = f"{label}.{number + 1}" if label else str(number + 1)
        if isinstance(node, Mapping) and isinstance(node.get("target"), str):
            target = node["target"]
        loc = loc[2:]
        if len(loc) >= 3 and loc[:2] == ["map_array", "rules"] and isinstance(node, Mapping):
            node, loc = node.get("map_array"), loc[1:]
    message, where = _message(error), _render_loc(error["type"], loc)
    prefix = f"rule {label} ({target or '?'})" if label else "mapping"
    return f"{prefix}: {where}: {message}" if where else f"{prefix}: {message}"


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "union_tag_invalid":
        return f"unknown transform '{(error.get('ctx') or {}).get('tag')}'"
    if kind == "extra_forbidden":
        return f"unknown field '{error['loc'][-1]}'"
    if kind == "missing":
        return f"'{error['loc'][-1]}' is required"
    return str(error["msg"]).removeprefix("Value error, ")


def _render_loc(kind: str, loc: Sequence[Any]) -> str:
    if kind == "union_tag_invalid":
        return ""  # the message names the transform
    if kind in ("missing", "extra_forbidden"):
        loc = loc[:-1]  # the message names the field
    out = ""
    for position, part in enumerate(loc):
        previous = loc[position - 1] if position else None
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(previous, int) or previous in ("when", "not"):
            continue  # a union tag (transform op, condition kind) pydantic adds to the loc
        else:
            out += f".{part}" if out else str(part)
    return out
