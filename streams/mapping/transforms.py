"""The value transforms of a rule, compiled from their specs into plain functions.

Every transform takes the value and the scope it is read in (``root``, ``item``: to look up
another path, e.g. the currency of an amount) and returns the new value, or raises
:class:`TransformFailed` with the reason. The engine turns that into a rule error naming
the rule, the transform, the value and where it came from. No transform converts through
``float`` except ``to_float``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from streams.mapping import money, rules
from streams.mapping.paths import MISSING, compile_reader, parse_source
from streams.mapping.payload import iso_text
from streams.mapping.scalars import TransformFailed, decimal_of, int_of, kind_of, text_of

TransformFn = Callable[[Any], Any]  # value -> new value
ScopedFn = Callable[[Any, Any, Any], Any]  # (value, root, item) -> new value


@dataclass(frozen=True, slots=True)
class Step:
    """A compiled transform: ``run(value)``, or ``run(value, root, item)`` when ``scoped``
    (it reads another path of the scope, e.g. a currency)."""

    name: str
    run: TransformFn | ScopedFn
    scoped: bool = False


_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_ROUNDING = {"half_even": ROUND_HALF_EVEN, "half_up": ROUND_HALF_UP, "down": ROUND_DOWN}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PREC_28 = Context(prec=28)  # shared: quantize only sets flags on it, and none of them traps
_UNIX_EXPONENT = {"unix_s": 9, "unix_ms": 6, "unix_ns": 0}  # decimal places to nanoseconds


def _to_int(value: Any) -> int:
    return int_of(value)


def _to_str(value: Any) -> str:
    return text_of(value)


def _to_float(value: Any) -> float:
    result = float(decimal_of(value))
    if result in (float("inf"), float("-inf")):
        raise TransformFailed("too large for a float")
    return result


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int | Decimal) and value in (0, 1):
        return bool(value)
    raise TransformFailed("not one of true/false/1/0/yes/no")


def _string_op(name: str, op: Callable[[str], Any]) -> TransformFn:
    def run(value: Any) -> Any:
        if not isinstance(value, str):
            raise TransformFailed(f"{name} needs a string, not {kind_of(value)}")
        return op(value)

    return run


def _to_decimal(spec: rules.ToDecimal) -> TransformFn:
    if spec.places is None:
        return decimal_of
    places = spec.places
    quantum = Decimal(1).scaleb(-places)
    rounding = _ROUNDING[spec.rounding]

    def run(value: Any) -> Decimal:
        number = decimal_of(value)
        # Enough precision for every digit: the default context (28) would round big sums.
        needed = number.adjusted() + places + 2
        context = _PREC_28 if needed <= 28 else Context(prec=needed)
        return number.quantize(quantum, rounding=rounding, context=context)

    return run


def _split(spec: rules.Split) -> TransformFn:
    return _string_op("split", lambda s: [p.strip() for p in s.split(spec.separator) if p.strip()])


def _parse_date(spec: rules.ParseDate) -> TransformFn:
    zone = ZoneInfo(spec.tz) if spec.tz else None

    def run(value: Any) -> datetime:
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
            raise TransformFailed(f"a date must be a string, not {kind_of(value)}")
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

    def run(value: Any) -> Any:
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

    def run(value: Any) -> Any:
        key = text_of(value)
        if key in spec.table:
            return spec.table[key]
        if has_default:
            return spec.default
        if spec.strict:
            raise TransformFailed(f"no entry for {key!r} in the table")
        return value

    return run


def _exponent_reader(
    spec: rules.ToMinorUnits | rules.FromMinorUnits,
) -> int | Callable[[Any, Any], int]:
    """The currency's exponent: a number fixed by the rule, or read from the payload."""
    if spec.exponent is not None:
        return spec.exponent
    if spec.currency is not None:
        return money.currency_exponent(spec.currency)
    path = parse_source(spec.currency_path or "")
    read = compile_reader(path)

    def from_payload(root: Any, item: Any) -> int:
        code = read(root, item)
        if code is MISSING or code is None:
            raise TransformFailed(f"no currency at {path.text}")
        try:
            return money.currency_exponent(code)
        except money.MoneyError as exc:
            raise TransformFailed(str(exc)) from exc

    return from_payload


def _to_minor(spec: rules.ToMinorUnits) -> Step:
    exponent = _exponent_reader(spec)

    def minor(number: Decimal, exponent: int) -> int:
        try:
            return money.to_minor_units(number, exponent)
        except money.MoneyError as exc:
            raise TransformFailed(str(exc)) from exc

    if isinstance(exponent, int):
        fixed = exponent
        return Step(spec.op, lambda value: minor(decimal_of(value), fixed))
    read_exponent = exponent

    def run(value: Any, root: Any, item: Any) -> int:
        number = decimal_of(value)  # the amount is checked before the currency is looked up
        return minor(number, read_exponent(root, item))

    return Step(spec.op, run, scoped=True)


def _from_minor(spec: rules.FromMinorUnits) -> Step:
    exponent = _exponent_reader(spec)
    if isinstance(exponent, int):
        fixed = exponent
        return Step(spec.op, lambda value: money.from_minor_units(int_of(value), fixed))
    read_exponent = exponent

    def run(value: Any, root: Any, item: Any) -> Decimal:
        units = int_of(value)
        return money.from_minor_units(units, read_exponent(root, item))

    return Step(spec.op, run, scoped=True)


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
            return _to_minor(spec)
        case rules.FromMinorUnits():
            return _from_minor(spec)
    return Step(spec.op, run)
