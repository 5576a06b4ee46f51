"""``when`` conditions: ``eq``, ``ne``, ``in``, ``exists`` on a path, combined with
``all`` / ``any`` / ``not``. Values compare as JSON means them (see :func:`json_equal`)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from streams.mapping import rules
from streams.mapping.paths import MISSING, SourcePath, parse_source
from streams.mapping.transforms import TransformFailed, decimal_of


class Readable(Protocol):
    def read(self, path: SourcePath) -> Any: ...


Predicate = Callable[[Readable], bool]


def compile_condition(spec: Any) -> Predicate:
    """A predicate over a scope from a validated condition (``rules.Condition``)."""
    match spec:
        case rules.AllOf():
            parts = [compile_condition(c) for c in spec.all]
            return lambda scope: all(p(scope) for p in parts)
        case rules.AnyOf():
            parts = [compile_condition(c) for c in spec.any]
            return lambda scope: any(p(scope) for p in parts)
        case rules.NotOf():
            inner = compile_condition(spec.not_)
            return lambda scope: not inner(scope)
    path, given = parse_source(spec.path), spec.model_fields_set

    def value_of(scope: Readable) -> Any:
        value = scope.read(path)
        return None if value is MISSING else value

    if "exists" in given:
        return lambda scope: (value_of(scope) is not None) == spec.exists
    if "in_" in given:
        return lambda scope: any(json_equal(value_of(scope), x) for x in spec.in_)
    expected, negate = (spec.ne, True) if "ne" in given else (spec.eq, False)
    return lambda scope: json_equal(value_of(scope), expected) != negate


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
