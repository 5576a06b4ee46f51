"""The scalar conversions the engine shares: a value's canonical text, its exact Decimal,
its integer — each raising :class:`TransformFailed` with the reason it cannot.

Transforms (``to_str``, ``to_decimal``, ``to_int``, …), templates, lookups, ``as`` and the
numeric comparisons of conditions all convert through these, so a value reads the same
everywhere. Nothing here goes through a binary float except the float input itself.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from streams.mapping.payload import decimal_text, iso_text


class TransformFailed(Exception):
    """A value this transform cannot convert; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_MAX_MAGNITUDE = 400
_OUT_OF_RANGE = "outside the range of 1e-400 .. 1e400"


def text_of(value: Any) -> str:
    """The canonical text of a scalar (``to_str``, templates, lookup keys): JSON spelling
    for booleans, plain digits for numbers, ISO 8601 for dates."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return iso_text(value)
    raise TransformFailed(f"{kind_of(value)} has no text form")


def decimal_of(value: Any) -> Decimal:
    """An exact Decimal from a JSON number or numeric string (a float via its shortest repr)."""
    kind = type(value)
    result: Decimal
    if kind is Decimal:  # the common cases first: a payload number, a numeric string
        result = value
    elif kind is str:
        try:  # _decimal_of_text, inlined: the happy path of every to_decimal on a string
            result = Decimal(value)
        except ArithmeticError:
            result = _decimal_of_text(value)
        if not result.is_finite() or "_" in value:
            result = _decimal_of_text(value)
    else:
        result = _decimal_of_any(value)
    if not result.is_finite():
        raise TransformFailed("not a finite number")
    if result and not -_MAX_MAGNITUDE <= result.adjusted() <= _MAX_MAGNITUDE:
        # 1e999999 would expand to a million digits in to_int / to_str.
        raise TransformFailed(_OUT_OF_RANGE)
    return result


def _decimal_of_text(value: str) -> Decimal:
    """The number a string spells, as :data:`NUMBER` says, parsed by Decimal at once.

    Decimal's own grammar (surrounding whitespace stripped) is :data:`NUMBER` plus ``_``
    between digits and the special values, so refusing those two is the same test as the
    pattern, at half its cost.
    """
    try:
        result = Decimal(value)
    except ArithmeticError:  # InvalidOperation; a context that does not trap it gives NaN
        if NUMBER.fullmatch(value.strip()):  # an exponent beyond what Decimal can hold
            raise TransformFailed(_OUT_OF_RANGE) from None
        raise TransformFailed("not a number") from None
    if not result.is_finite() or "_" in value:
        raise TransformFailed("not a number")
    return result


def _decimal_of_any(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise TransformFailed("a boolean is not a number")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        result = _decimal_of_text(str(value))
    else:
        raise TransformFailed(f"{kind_of(value)} is not a number")
    return result


def int_of(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = decimal_of(value)
    if number != number.to_integral_value():
        raise TransformFailed("has a fractional part")
    return int(number)


def kind_of(value: Any) -> str:
    """``an object``, ``a list``, ``null``, ``a bool``: how messages name a JSON type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int):
        return "an integer"
    return "a number" if isinstance(value, float | Decimal) else f"a {type(value).__name__}"
