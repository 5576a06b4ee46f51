"""Payload bytes in, output bytes out — with every number exact.

Payloads are decoded with ``parse_float=Decimal``: ``"total": 409.94`` becomes
``Decimal('409.94')`` and integers stay Python ints of any size, so nothing is rounded
through a binary float on the way through the engine. :func:`dump_output` writes a
``Decimal`` back as the exact digits it holds (a JSON number), never via ``float``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from synapseops.errors import Undecodable


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_payload(raw: bytes | str) -> Any:
    """Decode a JSON body for the engine (floats as ``Decimal``, ``NaN``/``Infinity`` refused).

    Raises :class:`synapseops.errors.Undecodable` for anything that is not JSON.
    """
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Undecodable(f"payload is not JSON: {exc}") from exc


def decimal_text(value: Decimal) -> str:
    """Plain digits, no exponent: ``Decimal('1E+2')`` → ``'100'``, ``'1902.00'`` kept."""
    return format(value, "f")


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
    _write(output, parts)
    return "".join(parts).encode()


def _write(value: Any, parts: list[str]) -> None:
    if value is None or isinstance(value, bool | str):
        parts.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        parts.append(str(int(value)))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be written as JSON")
        parts.append(repr(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be written as JSON")
        parts.append(decimal_text(value))
    elif isinstance(value, datetime):
        parts.append(json.dumps(iso_text(value)))
    elif isinstance(value, Mapping):
        parts.append("{")
        for number, (key, item) in enumerate(value.items()):
            parts.append(("," if number else "") + json.dumps(str(key), ensure_ascii=False) + ":")
            _write(item, parts)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for number, item in enumerate(value):
            if number:
                parts.append(",")
            _write(item, parts)
        parts.append("]")
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
