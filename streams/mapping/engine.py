"""Compile a mapping once, apply it to every event.

:func:`compile_mapping` validates the rule JSON up front (every problem at once, each naming
its rule) and turns each rule into one *writer*: a closure over its compiled paths,
transforms, condition and output form that reads ``(root, item)`` and writes its field.
:meth:`CompiledMapping.apply` then only calls writers; it never raises for a bad payload: it
runs every rule, collects every :class:`RuleError`, and answers a :class:`MappingResult`.
What an error says (rule, concrete target and source path, an excerpt of the value) is built
when a rule fails, never on the happy path (:mod:`streams.mapping.failures`).

Semantics worth knowing (the README has the full reference):

- a missing path and a JSON ``null`` both read as ``None``; ``default`` replaces it; a
  ``None`` value skips the transforms and is written as ``null`` (``required`` makes it an
  error, ``when: {exists}`` omits the field instead);
- without ``as``, a value keeps its JSON type, except that a Decimal made by a transform
  (``to_decimal``, ``from_minor_units``) is written as a string; ``as: "number"`` writes it
  as an exact JSON number via :func:`dump_output`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from streams.mapping import rules
from streams.mapping.conditions import compile_condition
from streams.mapping.errors import RuleError, spec_problems
from streams.mapping.failures import Context, Failed, RuleName
from streams.mapping.paths import MISSING, compile_reader, parse_source, parse_target
from streams.mapping.payload import decimal_text
from streams.mapping.scalars import TransformFailed
from streams.mapping.values import constant, finish, finisher, producer, step_failed, steps
from synapseops.errors import MappingFailed, MappingSpecInvalid

Write = Callable[[Any, Any, dict[str, Any], list[RuleError], Context], None]
"""``write(root, item, out, errors, context)``: put the rule's field into ``out``, or raise
:class:`Failed`; a ``map_array`` appends its items' errors to ``errors`` itself."""


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: RuleName
    write: Write


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
        _run(self.rules, payload, payload, output, errors, None)
        # errors passed even when empty: the default_factory path costs a microsecond more
        return MappingResult(None if errors else output, errors)


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


def _run(
    compiled: tuple[CompiledRule, ...],
    root: Any,
    item: Any,
    out: dict[str, Any],
    errors: list[RuleError],
    context: Context,
) -> None:
    for rule in compiled:
        try:
            rule.write(root, item, out, errors, context)
        except Failed as failure:
            errors.append(rule.name.error(failure, context))


# --- compiling --------------------------------------------------------------------------


def _compile_rules(specs: list[rules.Rule], parent: str) -> tuple[CompiledRule, ...]:
    compiled = []
    for number, spec in enumerate(specs, start=1):
        label = f"{parent}.{number}" if parent else str(number)
        keys = parse_target(spec.target).keys
        name = RuleName(int(label.split(".")[0]), label, ".".join(keys))
        put = _putter(keys)
        write = _map_array(spec.map_array, name, put) if spec.map_array else _value(spec, keys)
        compiled.append(CompiledRule(name, _guarded(spec, write, put)))
    return tuple(compiled)


Put = Callable[[dict[str, Any], Any], None]


def _putter(keys: tuple[str, ...]) -> Put:
    """Write at a target (for the rarer writers; :func:`_value` inlines it)."""
    *parents, last = keys

    def put(out: dict[str, Any], value: Any) -> None:
        (_descend(out, parents) if parents else out)[last] = value

    return put


def _descend(out: dict[str, Any], parents: list[str]) -> dict[str, Any]:
    """The object a nested target is written in, created on its first write (so output keys
    keep the order in which rules first wrote below them)."""
    node = out
    for key in parents:
        below = node.get(key)
        node = below if below is not None else node.setdefault(key, {})
    return node


def _guarded(spec: rules.Rule, write: Write, put: Put) -> Write:
    """The rule under its ``when``: skipped (target omitted) or its ``else`` written."""
    if spec.when is None:
        return write
    condition = compile_condition(spec.when)
    if "else_" not in spec.model_fields_set:

        def when(root: Any, item: Any, out: dict[str, Any], e: list[RuleError], c: Context) -> None:
            if condition(root, item):
                write(root, item, out, e, c)

        return when
    as_, transformed = spec.as_, bool(spec.transforms)
    try:  # the else value is a constant: its output form too, unless that form fails
        otherwise = constant(finish(spec.else_, as_, transformed))
    except Failed:
        fresh = constant(spec.else_)
        otherwise = lambda: finish(fresh(), as_, transformed)  # noqa: E731 - fails each time

    def when_else(
        root: Any, item: Any, out: dict[str, Any], e: list[RuleError], c: Context
    ) -> None:
        if condition(root, item):
            write(root, item, out, e, c)
        else:
            put(out, otherwise())

    return when_else


def _value(spec: rules.Rule, keys: tuple[str, ...]) -> Write:
    produce, origin = producer(spec)
    pipeline = steps(spec)
    output_form, unchanged = finisher(spec.as_, bool(pipeline))
    fallback = constant(spec.default) if "default" in spec.model_fields_set else None
    required = spec.required
    money_text = spec.as_ is None and bool(pipeline)  # the shortcuts of values.finish
    int_text = spec.as_ == "string"
    *parents, last = keys
    parent = parents[0] if len(parents) == 1 else None

    def write(root: Any, item: Any, out: dict[str, Any], _e: list[RuleError], _c: Context) -> None:
        value = produce(root, item)
        if value is MISSING or value is None:
            value = fallback() if fallback is not None else None
            if value is None:
                if required:
                    raise Failed(_required_missing, None, origin(root, item), source=True)
                (_descend(out, parents) if parents else out)[last] = None
                return
        for name, run, scoped in pipeline:
            try:
                value = run(value, root, item) if scoped else run(value)
            except TransformFailed as exc:
                raise step_failed(name, value, exc.reason, origin(root, item)) from exc
            except (ValueError, ArithmeticError) as exc:
                # strptime / fromisoformat / timedelta report bad input this way.
                raise step_failed(name, value, str(exc), origin(root, item)) from exc
        kind = type(value)
        if kind not in unchanged:
            if kind is Decimal and money_text:  # a transform's Decimal is money: its digits
                value = decimal_text(value)
            elif kind is int and int_text:
                value = str(value)
            else:
                value = output_form(value)
        if not parents:
            out[last] = value
        elif parent is not None:  # _descend, inlined for the usual one level (customer.email)
            node = out.get(parent)
            if node is None:
                node = out[parent] = {}
            node[last] = value
        else:
            _descend(out, parents)[last] = value

    return write


def _required_missing(where: str | None) -> str:
    return f"required value missing at {where or 'its source'}"


def _map_array(spec: rules.MapArray, name: RuleName, put: Put) -> Write:
    path = parse_source(spec.source)
    read = compile_reader(path)
    children = _compile_rules(spec.rules, name.label)
    target = name.name

    def write(root: Any, item: Any, out: dict[str, Any], e: list[RuleError], c: Context) -> None:
        items = read(root, item)
        rows: list[dict[str, Any]] = []
        if items is MISSING or items is None:
            put(out, rows)
            return
        if not isinstance(items, list):
            raise Failed(_not_a_list, items, path, source=True)
        for position, element in enumerate(items):
            row: dict[str, Any] = {}
            _run(children, root, element, row, e, (c, target, path, position))
            rows.append(row)
        put(out, rows)

    return write


def _not_a_list(where: str | None) -> str:
    return f"map_array needs a list at {where}"
