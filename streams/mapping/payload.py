"""Payload bytes in, output bytes out — with every number exact.

Payloads are decoded with ``parse_float=Decimal``: ``"total": 409.94`` becomes
``Decimal('409.94')`` and integers stay Python ints of any size, so nothing is rounded
through a binary float on the way through the engine. :func:`dump_output` writes a
``Decimal`` back as the exact digits it holds (a JSON number), never via ``float``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

import msgspec

from synapseops.errors import Undecodable

# msgspec decodes about twice as fast as json.loads and hands every float to the hook as
# its literal text, so the values are the same. It is the fast path only: json.loads is the
# reference, and decides every body msgspec refuses — lone surrogate escapes, a UTF-8 BOM,
# UTF-16/32, NaN — so the set of accepted bodies and the error for the rest stay its own.
_FAST = msgspec.json.Decoder(float_hook=Decimal)
_FAST_INPUTS = frozenset({bytes, str, bytearray})  # what json.loads takes (not memoryview)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_payload(raw: bytes | str) -> Any:
    """Decode a JSON body for the engine (floats as ``Decimal``, ``NaN``/``Infinity`` refused).

    Raises :class:`synapseops.errors.Undecodable` for anything that is not JSON (an exponent
    beyond what Decimal holds, ``1e99999999999999999999``, included).
    """
    if type(raw) in _FAST_INPUTS:
        try:
            return _FAST.decode(raw)
        except Exception:  # noqa: BLE001 - whatever msgspec refuses, json.loads decides
            pass
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, ArithmeticError, RecursionError) as exc:
        raise Undecodable(f"payload is not JSON: {exc}") from exc


def decimal_text(value: Decimal) -> str:
    """Plain digits, no exponent: ``Decimal('1E+2')`` → ``'100'``, ``'1902.00'`` kept."""
    text = str(value)  # the same digits as format(value, "f") unless it has an exponent,
    return format(value, "f") if "E" in text else text  # and three times faster


def iso_text(value: datetime) -> str:
    """ISO 8601; a zero offset is written ``Z`` (what most targets expect of UTC)."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def dump_output(output: Any) -> bytes:
    """Serialise a mapping's output as compact UTF-8 JSON.

    ``Decimal`` values are written as exact JSON numbers; the engine has already turned the
    ones a rule wants as strings into strings. ``datetime`` is written as ISO 8601. A
    non-finite number raises ``ValueError`` (JSON has none).
    """
    parts: list[str] = []
    _write(output, parts.append)
    return "".join(parts).encode()


# What json.dumps(value, ensure_ascii=False) writes for the scalars of decoded JSON, by exact
# type; every other value (subclasses included) goes through _write_any.
def _decimal_json(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} cannot be written as JSON")
    return decimal_text(value)


def _float_json(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"{value} cannot be written as JSON")
    return repr(value)


_SCALARS: dict[type, Callable[[Any], str]] = {
    str: encode_basestring,
    int: int.__repr__,
    bool: lambda value: "true" if value else "false",
    type(None): lambda _value: "null",
    Decimal: _decimal_json,
    float: _float_json,
}


def _write(value: Any, append: Callable[[str], None]) -> None:
    kind = type(value)
    if kind is dict:
        separator = "{"
        for key, item in value.items():
            append(separator + encode_basestring(key if type(key) is str else str(key)) + ":")
            separator = ","
            # a leaf is written here, not in a call of its own: most members are leaves
            if (scalar := _SCALARS.get(type(item))) is not None:
                append(scalar(item))
            else:
                _write(item, append)
        append("}" if separator == "," else "{}")
    else:  # a list, or a value of a type no JSON decoder makes, goes the general way
        scalar = _SCALARS.get(kind)
        if scalar is not None:
            append(scalar(value))
        else:
            _write_any(value, append)


def _write_any(value: Any, append: Callable[[str], None]) -> None:
    if value is None or isinstance(value, bool | str):
        append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        append(str(int(value)))
    elif isinstance(value, float):
        append(_float_json(value))
    elif isinstance(value, Decimal):
        append(_decimal_json(value))
    elif isinstance(value, datetime):
        append(json.dumps(iso_text(value)))
    elif isinstance(value, Mapping):
        append("{")
        for number, (key, item) in enumerate(value.items()):
            append(("," if number else "") + json.dumps(str(key), ensure_ascii=False) + ":")
            _write(item, append)
        append("}")
    elif isinstance(value, list | tuple):
        append("[")
        for number, item in enumerate(value):
            if number:
                append(",")
            _write(item, append)
        append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON")


def jsonable(value: Any) -> Any:
    """A copy fit for any JSON encoder (``Decimal`` → string, ``datetime`` → ISO), for error
    reports and APIs that serialise with their own encoder (FastAPI turns Decimal into float)."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return iso_text(value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def show(value: Any, limit: int = 80) -> str:
    """How an error message quotes a value: ``'abc'``, ``12.50``, ``null``, ``{...}``."""
    if isinstance(value, str):
        text = repr(value)
    elif value is None or isinstance(value, bool):
        text = json.dumps(value)
    elif isinstance(value, Decimal):
        text = decimal_text(value)
    elif isinstance(value, datetime):
        text = iso_text(value)
    else:
        try:
            text = json.dumps(jsonable(value), ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
