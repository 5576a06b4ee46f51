"""``when`` conditions: ``eq``, ``ne``, ``in``, ``exists`` on a path, combined with
``all`` / ``any`` / ``not``. Values compare as JSON means them (see :func:`json_equal`)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from streams.mapping import rules
from streams.mapping.paths import MISSING, compile_reader, parse_source
from streams.mapping.scalars import TransformFailed, decimal_of

Predicate = Callable[[Any, Any], bool]
"""A compiled condition over the scope ``(root, item)``."""


def compile_condition(spec: Any) -> Predicate:
    """A predicate over ``(root, item)`` from a validated condition (``rules.Condition``)."""
    match spec:
        case rules.AllOf():
            parts = tuple(compile_condition(c) for c in spec.all)
            return lambda root, item: all(p(root, item) for p in parts)
        case rules.AnyOf():
            parts = tuple(compile_condition(c) for c in spec.any)
            return lambda root, item: any(p(root, item) for p in parts)
        case rules.NotOf():
            inner = compile_condition(spec.not_)
            return lambda root, item: not inner(root, item)
    read, given = compile_reader(parse_source(spec.path)), spec.model_fields_set
    if "exists" in given:
        wanted = spec.exists  # may be null: then no value matches, as before

        def exists(root: Any, item: Any) -> bool:
            value = read(root, item)
            return bool((value is not MISSING and value is not None) == wanted)

        return exists
    if "in_" in given:
        options = tuple(spec.in_ or ())

        def among(root: Any, item: Any) -> bool:
            value = read(root, item)
            value = None if value is MISSING else value
            return any(json_equal(value, option) for option in options)

        return among
    expected, negate = (spec.ne, True) if "ne" in given else (spec.eq, False)

    def equal(root: Any, item: Any) -> bool:
        value = read(root, item)
        if type(value) is str and type(expected) is str:  # the usual test, answered at once
            return (value == expected) != negate
        return json_equal(None if value is MISSING else value, expected) != negate

    return equal


def json_equal(left: Any, right: Any) -> bool:
    """Equality as JSON means it: ``true`` is not ``1``; numbers compare exactly
    (``Decimal('0.1')`` equals the spec's ``0.1``); ``"1"`` is not ``1``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    numbers = (int, float, Decimal)
    if isinstance(left, numbers) and isinstance(right, numbers):
        try:
            return decimal_of(left) == decimal_of(right)
        except TransformFailed:
            return False
    return bool(left == right)
