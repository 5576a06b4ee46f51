"""Compile a mapping once, apply it to every event.

:func:`compile_mapping` validates the rule JSON up front (every problem at once, each naming
its rule) and turns each rule into plain closures: parsed paths, built transforms, compiled
conditions. :meth:`CompiledMapping.apply` then never raises for a bad payload: it runs every
rule, collects every :class:`RuleError`, and answers a :class:`MappingResult`.

Semantics worth knowing (the README has the full reference):

- a missing path and a JSON ``null`` both read as ``None``; ``default`` replaces it; a
  ``None`` value skips the transforms and is written as ``null`` (``required`` makes it an
  error, ``when: {exists}`` omits the field instead);
- without ``as``, a value keeps its JSON type, except that a Decimal made by a transform
  (``to_decimal``, ``from_minor_units``) is written as a string; ``as: "number"`` writes it
  as an exact JSON number via :func:`dump_output`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from streams.mapping import rules
from streams.mapping.conditions import Predicate, compile_condition
from streams.mapping.errors import MappingFailed, MappingSpecInvalid, RuleError, spec_problems
from streams.mapping.paths import (
    MISSING,
    SourcePath,
    TargetPath,
    get,
    parse_source,
    parse_target,
    parse_template,
    set_path,
)
from streams.mapping.payload import decimal_text, iso_text, show
from streams.mapping.transforms import Step, TransformFailed, build_step, decimal_of, text_of


@dataclass(frozen=True, slots=True)
class Scope:
    """Where paths are read: the payload root, the current ``map_array`` item, and the
    concrete path of that item (for messages)."""

    root: Any
    item: Any
    item_path: str = ""

    def read(self, path: SourcePath) -> Any:
        return get(self.root if path.from_root else self.item, path.segments)

    def where(self, path: SourcePath) -> str:
        return path.below(self.item_path)


class _Failed(Exception):
    """One rule failed; carries what the RuleError needs (never leaves this module)."""

    def __init__(self, message: str, value: Any = None, source: str | None = None) -> None:
        super().__init__(message)
        self.message, self.value, self.source = message, value, source


Producer = Callable[[Scope, str, list[RuleError]], tuple[Any, str | None]]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    label: str
    index: int
    target: TargetPath
    produce: Producer
    steps: tuple[Step, ...]
    condition: Predicate | None
    otherwise: tuple[Any, ...]  # () = omit the target; (value,) = the `else` value
    fallback: tuple[Any, ...]  # () = no default; (value,) = the default
    required: bool
    as_: str | None


@dataclass(frozen=True, slots=True)
class MappingResult:
    """``output`` when every rule succeeded, else ``output is None`` and ``errors`` says why."""

    output: dict[str, Any] | None
    errors: list[RuleError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> dict[str, Any]:
        """The output, or :class:`MappingFailed` (a FatalError: dead-letter, do not retry)."""
        if self.errors or self.output is None:
            raise MappingFailed(self.errors)
        return self.output


@dataclass(frozen=True, slots=True)
class CompiledMapping:
    spec: rules.MappingSpec
    rules: tuple[CompiledRule, ...]

    def apply(self, payload: Any) -> MappingResult:
        """Map one decoded payload (see :func:`load_payload`); never raises for bad data."""
        output: dict[str, Any] = {}
        errors: list[RuleError] = []
        _apply_rules(self.rules, Scope(payload, payload), "", output, errors)
        return MappingResult(None, errors) if errors else MappingResult(output)


def compile_mapping(spec: Mapping[str, Any] | rules.MappingSpec) -> CompiledMapping:
    """Validate and compile a mapping; raises :class:`MappingSpecInvalid` listing every
    problem (``rule 3 (erp.total): unknown transform 'to_flaot'``)."""
    if not isinstance(spec, rules.MappingSpec):
        if not isinstance(spec, Mapping):
            raise MappingSpecInvalid(["mapping: must be a JSON object with a 'rules' list"])
        try:
            spec = rules.MappingSpec.model_validate(dict(spec))
        except ValidationError as exc:
            raise MappingSpecInvalid(spec_problems(spec, exc)) from exc
    return CompiledMapping(spec, _compile_rules(spec.rules, ""))


def apply_mapping(spec: Mapping[str, Any] | rules.MappingSpec, payload: Any) -> MappingResult:
    """Compile and apply in one call (previews; a pipeline compiles once and reuses)."""
    return compile_mapping(spec).apply(payload)


# --- compiling --------------------------------------------------------------------------


def _compile_rules(specs: list[rules.Rule], parent: str) -> tuple[CompiledRule, ...]:
    compiled = []
    for number, spec in enumerate(specs, start=1):
        label = f"{parent}.{number}" if parent else str(number)
        given = spec.model_fields_set
        compiled.append(
            CompiledRule(
                label=label,
                index=int(label.split(".")[0]),
                target=parse_target(spec.target),
                produce=_producer(spec, label),
                steps=tuple(build_step(t) for t in spec.transforms),
                condition=compile_condition(spec.when) if spec.when is not None else None,
                otherwise=(spec.else_,) if "else_" in given else (),
                fallback=(spec.default,) if "default" in given else (),
                required=spec.required,
                as_=spec.as_,
            )
        )
    return tuple(compiled)


def _producer(spec: rules.Rule, label: str) -> Producer:
    if spec.source is not None:
        path = parse_source(spec.source)
        return lambda scope, _t, _e: (scope.read(path), scope.where(path))
    if spec.coalesce is not None:
        paths = [parse_source(text) for text in spec.coalesce]

        def first(scope: Scope, _t: str, _e: list[RuleError]) -> tuple[Any, str | None]:
            for path in paths:
                value = scope.read(path)
                if value is not MISSING and value is not None:
                    return value, scope.where(path)
            return None, scope.where(paths[0])

        return first
    if spec.template is not None:
        return _template(spec.template)
    if spec.concat is not None:
        return _concat(spec.concat)
    if spec.map_array is not None:
        return _map_array(spec.map_array, label)
    constant = spec.const
    return lambda _s, _t, _e: (copy.deepcopy(constant), None)


def _template(text: str) -> Producer:
    parts = parse_template(text).parts

    def render(scope: Scope, _t: str, _e: list[RuleError]) -> tuple[Any, str | None]:
        out, missing = [], []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = scope.read(part)
            if value is MISSING or value is None:
                missing.append("{" + part.text + "}")
                continue
            try:
                out.append(text_of(value))
            except TransformFailed as exc:
                raise _Failed(f"template: {exc.reason} at {scope.where(part)}", value) from exc
        if missing:
            raise _Failed(f"template: no value for {', '.join(missing)}")
        return "".join(out), None

    return render


def _concat(spec: rules.Concat) -> Producer:
    paths = [parse_source(text) for text in spec.paths]

    def join(scope: Scope, _t: str, _e: list[RuleError]) -> tuple[Any, str | None]:
        values = [(scope.read(path), path) for path in paths]
        try:
            texts = [text_of(v) for v, _ in values if v is not MISSING and v is not None]
        except TransformFailed as exc:
            raise _Failed(f"concat: {exc.reason}") from exc
        return spec.separator.join(texts), None

    return join


def _map_array(spec: rules.MapArray, label: str) -> Producer:
    path = parse_source(spec.source)
    children = _compile_rules(spec.rules, label)

    def each(scope: Scope, target: str, errors: list[RuleError]) -> tuple[Any, str | None]:
        items, where = scope.read(path), scope.where(path)
        if items is MISSING or items is None:
            return [], where
        if not isinstance(items, list):
            raise _Failed(f"map_array needs a list at {where}", items, where)
        out = []
        for position, item in enumerate(items):
            row: dict[str, Any] = {}
            item_scope = Scope(scope.root, item, f"{where}[{position}]")
            _apply_rules(children, item_scope, f"{target}[{position}]", row, errors)
            out.append(row)
        return out, where

    return each


# --- applying ---------------------------------------------------------------------------


def _apply_rules(
    compiled: tuple[CompiledRule, ...],
    scope: Scope,
    prefix: str,
    out: dict[str, Any],
    errors: list[RuleError],
) -> None:
    for rule in compiled:
        name = ".".join(rule.target.keys)
        target = f"{prefix}.{name}" if prefix else name
        try:
            if rule.condition is not None and not rule.condition(scope):
                if rule.otherwise:
                    set_path(out, rule.target.keys, _finish(copy.deepcopy(rule.otherwise[0]), rule))
                continue
            set_path(out, rule.target.keys, _value(rule, scope, target, errors))
        except _Failed as failed:
            message = f"rule {rule.label} ({target}): {failed.message}"
            errors.append(
                RuleError(rule.index, rule.label, target, message, failed.value, failed.source)
            )


def _value(rule: CompiledRule, scope: Scope, target: str, errors: list[RuleError]) -> Any:
    value, where = rule.produce(scope, target, errors)
    if value is MISSING or value is None:
        value = copy.deepcopy(rule.fallback[0]) if rule.fallback else None
    if value is None:
        if rule.required:
            raise _Failed(f"required value missing at {where or 'its source'}", None, where)
        return None
    for step in rule.steps:
        try:
            value = step.run(value, scope.read)
        except TransformFailed as exc:
            raise _Failed(_failure(step, value, where, exc.reason), value, where) from exc
        except (ValueError, ArithmeticError, OverflowError) as exc:
            # strptime / fromisoformat / timedelta report bad input this way.
            raise _Failed(_failure(step, value, where, str(exc)), value, where) from exc
    return _finish(value, rule)


def _failure(step: Step, value: Any, where: str | None, reason: str) -> str:
    at = f" at {where}" if where else ""
    return f"{step.name} failed on {show(value)}{at} ({reason})"


def _finish(value: Any, rule: CompiledRule) -> Any:
    """The output form of a value (see the module docstring for ``as``)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        value = iso_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _Failed(f"{show(value)} is not a finite number", value)
    if rule.as_ == "string":
        try:
            return text_of(value)
        except TransformFailed as exc:
            raise _Failed(f"as string: {exc.reason}", value) from exc
    if rule.as_ == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        try:
            return decimal_of(value)
        except TransformFailed as exc:
            raise _Failed(f"as number: {show(value)} is {exc.reason}", value) from exc
    if isinstance(value, Decimal) and rule.steps:
        return decimal_text(value)
    return value
