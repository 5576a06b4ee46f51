"""The value transforms of a rule, compiled from their specs into plain functions.

Every transform takes the value and a ``read`` function (to look up another path in the
same scope, e.g. the currency of an amount) and returns the new value, or raises
:class:`TransformFailed` with the reason. The engine turns that into a rule error naming
the rule, the transform, the value and where it came from. No transform converts through
``float`` except ``to_float``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from streams.mapping import money, rules
from streams.mapping.paths import MISSING, SourcePath, parse_source
from streams.mapping.payload import decimal_text, iso_text

Reader = Callable[[SourcePath], Any]
TransformFn = Callable[[Any, Reader], Any]


class TransformFailed(Exception):
    """A value this transform cannot convert; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    run: TransformFn


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_ROUNDING = {"half_even": ROUND_HALF_EVEN, "half_up": ROUND_HALF_UP, "down": ROUND_DOWN}
_MAX_MAGNITUDE = 400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIX_EXPONENT = {"unix_s": 9, "unix_ms": 6, "unix_ns": 0}  # decimal places to nanoseconds


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
    raise TransformFailed(f"{_kind(value)} has no text form")


def decimal_of(value: Any) -> Decimal:
    """An exact Decimal from a JSON number or numeric string (a float via its shortest repr)."""
    if isinstance(value, bool):
        raise TransformFailed("a boolean is not a number")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        result = Decimal(value.strip())
    else:
        kind = "not a number" if isinstance(value, str) else f"{_kind(value)} is not a number"
        raise TransformFailed(kind)
    if not result.is_finite():
        raise TransformFailed("not a finite number")
    if result and not -_MAX_MAGNITUDE <= result.adjusted() <= _MAX_MAGNITUDE:
        # 1e999999 would expand to a million digits in to_int / to_str.
        raise TransformFailed("outside the range of 1e-400 .. 1e400")
    return result


def int_of(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = decimal_of(value)
    if number != number.to_integral_value():
        raise TransformFailed("has a fractional part")
    return int(number)


def _kind(value: Any) -> str:
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


def _to_int(value: Any, _: Reader) -> int:
    return int_of(value)


def _to_str(value: Any, _: Reader) -> str:
    return text_of(value)


def _to_float(value: Any, _: Reader) -> float:
    result = float(decimal_of(value))
    if result in (float("inf"), float("-inf")):
        raise TransformFailed("too large for a float")
    return result


def _to_bool(value: Any, _: Reader) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int | Decimal) and value in (0, 1):
        return bool(value)
    raise TransformFailed("not one of true/false/1/0/yes/no")


def _string_op(name: str, op: Callable[[str], Any]) -> TransformFn:
    def run(value: Any, _: Reader) -> Any:
        if not isinstance(value, str):
            raise TransformFailed(f"{name} needs a string, not {_kind(value)}")
        return op(value)

    return run


def _to_decimal(spec: rules.ToDecimal) -> TransformFn:
    if spec.places is None:
        return lambda value, _: decimal_of(value)
    places = spec.places
    quantum = Decimal(1).scaleb(-places)
    rounding = _ROUNDING[spec.rounding]

    def run(value: Any, _: Reader) -> Decimal:
        number = decimal_of(value)
        # Enough precision for every digit: the default context (28) would round big sums.
        context = Context(prec=max(28, number.adjusted() + places + 2))
        return number.quantize(quantum, rounding=rounding, context=context)

    return run


def _split(spec: rules.Split) -> TransformFn:
    return _string_op("split", lambda s: [p.strip() for p in s.split(spec.separator) if p.strip()])


def _parse_date(spec: rules.ParseDate) -> TransformFn:
    zone = ZoneInfo(spec.tz) if spec.tz else None

    def run(value: Any, _: Reader) -> datetime:
        if isinstance(value, datetime):
            parsed = value
        elif spec.format in _UNIX_EXPONENT:
            try:
                nanos = money.to_minor_units(decimal_of(value), _UNIX_EXPONENT[spec.format])
            except money.MoneyError as exc:
                raise TransformFailed("finer than a nanosecond") from exc
            seconds, rest = divmod(nanos, 10**9)
            # datetime holds microseconds: nanoseconds below that are dropped (floor).
            return _EPOCH + timedelta(seconds=seconds, microseconds=rest // 1000)
        elif not isinstance(value, str):
            raise TransformFailed(f"a date must be a string, not {_kind(value)}")
        elif spec.format == "iso8601":
            parsed = datetime.fromisoformat(value.strip())
        else:
            parsed = datetime.strptime(value.strip(), spec.format)
        if parsed.tzinfo is None:
            if zone is None:
                raise TransformFailed("the date has no UTC offset and the rule gives no tz")
            parsed = parsed.replace(tzinfo=zone)
        return parsed

    return run


def _format_date(spec: rules.FormatDate) -> TransformFn:
    zone = ZoneInfo(spec.tz)

    def run(value: Any, _: Reader) -> Any:
        if not isinstance(value, datetime):
            raise TransformFailed("format_date needs a date: put parse_date before it")
        local = value.astimezone(zone)
        if spec.format == "iso8601":
            return iso_text(local)
        if spec.format in _UNIX_EXPONENT:
            delta = value - _EPOCH
            micros = (delta.days * 86_400 + delta.seconds) * 10**6 + delta.microseconds
            nanos = micros * 1000
            result = money.from_minor_units(nanos, _UNIX_EXPONENT[spec.format])
            return int(result) if result == result.to_integral_value() else result.normalize()
        return local.strftime(spec.format)

    return run


def _lookup(spec: rules.Lookup) -> TransformFn:
    has_default = "default" in spec.model_fields_set

    def run(value: Any, _: Reader) -> Any:
        key = text_of(value)
        if key in spec.table:
            return spec.table[key]
        if has_default:
            return spec.default
        if spec.strict:
            raise TransformFailed(f"no entry for {key!r} in the table")
        return value

    return run


def _exponent_reader(spec: rules.ToMinorUnits | rules.FromMinorUnits) -> Callable[[Reader], int]:
    if spec.exponent is not None:
        fixed = spec.exponent
        return lambda _: fixed
    if spec.currency is not None:
        literal = money.currency_exponent(spec.currency)
        return lambda _: literal
    path = parse_source(spec.currency_path or "")

    def from_payload(read: Reader) -> int:
        code = read(path)
        if code is MISSING or code is None:
            raise TransformFailed(f"no currency at {path.text}")
        try:
            return money.currency_exponent(code)
        except money.MoneyError as exc:
            raise TransformFailed(str(exc)) from exc

    return from_payload


def _to_minor(spec: rules.ToMinorUnits) -> TransformFn:
    exponent_of = _exponent_reader(spec)

    def run(value: Any, read: Reader) -> int:
        try:
            return money.to_minor_units(decimal_of(value), exponent_of(read))
        except money.MoneyError as exc:
            raise TransformFailed(str(exc)) from exc

    return run


def _from_minor(spec: rules.FromMinorUnits) -> TransformFn:
    exponent_of = _exponent_reader(spec)
    return lambda value, read: money.from_minor_units(int_of(value), exponent_of(read))


_PLAIN: dict[str, TransformFn] = {
    "to_int": _to_int,
    "to_float": _to_float,
    "to_str": _to_str,
    "to_bool": _to_bool,
    "upper": _string_op("upper", str.upper),
    "lower": _string_op("lower", str.lower),
    "trim": _string_op("trim", str.strip),
}


def build_step(spec: rules.TransformSpec) -> Step:
    """Compile one transform spec (already validated) into a :class:`Step`."""
    run: TransformFn
    match spec:
        case rules.Plain():
            run = _PLAIN[spec.op]
        case rules.ToDecimal():
            run = _to_decimal(spec)
        case rules.Split():
            run = _split(spec)
        case rules.ParseDate():
            run = _parse_date(spec)
        case rules.FormatDate():
            run = _format_date(spec)
        case rules.Lookup():
            run = _lookup(spec)
        case rules.ToMinorUnits():
            run = _to_minor(spec)
        case rules.FromMinorUnits():
            run = _from_minor(spec)
    return Step(spec.op, run)
