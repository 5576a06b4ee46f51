"""The value of a rule, compiled: its source, its transforms and its output form.

Each piece is a closure built once per mapping. A producer reads ``(root, item)`` and answers
the raw value (``MISSING`` or ``None`` when there is none); its *origin* answers, only when a
rule has failed, which source path supplied that value, so a message can name it without the
happy path ever keeping track. Constants are shared when immutable (every JSON scalar) and
copied per record only when they are objects or lists, which a caller may mutate.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from streams.mapping import rules
from streams.mapping.failures import Failed, failed
from streams.mapping.paths import (
    MISSING,
    Read,
    SourcePath,
    compile_reader,
    parse_source,
    parse_template,
)
from streams.mapping.payload import decimal_text, iso_text, show
from streams.mapping.scalars import TransformFailed, decimal_of, text_of
from streams.mapping.transforms import Step, build_step

Produce = Callable[[Any, Any], Any]
Origin = Callable[[Any, Any], SourcePath | None]
Finish = Callable[[Any], Any]

_IMMUTABLE = frozenset({type(None), bool, int, float, str, Decimal})


def constant(value: Any) -> Callable[[], Any]:
    """The value, fresh for each record only if it could be mutated through the output."""
    if type(value) in _IMMUTABLE:
        return lambda: value
    return lambda: _copy_json(value)


def _copy_json(value: Any) -> Any:
    if type(value) is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy_json(item) for item in value]
    return value if type(value) in _IMMUTABLE else copy.deepcopy(value)


def _no_origin(_root: Any, _item: Any) -> SourcePath | None:
    return None


def producer(spec: rules.Rule) -> tuple[Produce, Origin]:
    """The value source of a rule that is not a ``map_array``."""
    if spec.source is not None:
        path = parse_source(spec.source)
        return compile_reader(path), lambda _root, _item: path
    if spec.coalesce is not None:
        return _coalesce([parse_source(text) for text in spec.coalesce])
    if spec.template is not None:
        return _template(spec.template), _no_origin
    if spec.concat is not None:
        return _concat(spec.concat), _no_origin
    value = spec.const
    if type(value) in _IMMUTABLE:
        return lambda _root, _item: value, _no_origin
    return lambda _root, _item: _copy_json(value), _no_origin


def _coalesce(paths: Sequence[SourcePath]) -> tuple[Produce, Origin]:
    readers = tuple(compile_reader(path) for path in paths)

    def first(root: Any, item: Any) -> Any:
        for read in readers:
            value = read(root, item)
            if value is not MISSING and value is not None:
                return value
        return None

    def origin(root: Any, item: Any) -> SourcePath:
        # Pure, so asking again after a failure finds the same path that supplied the value.
        for path, read in zip(paths, readers, strict=True):
            value = read(root, item)
            if value is not MISSING and value is not None:
                return path
        return paths[0]

    return first, origin


def _template(text: str) -> Produce:
    parts: tuple[str | tuple[SourcePath, Read], ...] = tuple(
        part if isinstance(part, str) else (part, compile_reader(part))
        for part in parse_template(text).parts
    )

    def render(root: Any, item: Any) -> str:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            path, read = part
            value = read(root, item)
            if type(value) is str:
                out.append(value)
            elif value is MISSING or value is None:
                raise _unfilled(parts, root, item)
            else:
                out.append(_template_text(value, path))
        return "".join(out)

    return render


def _template_text(value: Any, path: SourcePath) -> str:
    try:
        return text_of(value)
    except TransformFailed as exc:
        reason = exc.reason
        raise Failed(lambda where: f"template: {reason} at {where}", value, path) from exc


def _unfilled(parts: Sequence[str | tuple[SourcePath, Read]], root: Any, item: Any) -> Failed:
    """Every placeholder without a value (a text problem of an earlier one comes first)."""
    missing = []
    for part in parts:
        if isinstance(part, str):
            continue
        path, read = part
        value = read(root, item)
        if value is MISSING or value is None:
            missing.append("{" + path.text + "}")
        else:
            _template_text(value, path)
    return failed(f"template: no value for {', '.join(missing)}")


def _concat(spec: rules.Concat) -> Produce:
    readers = tuple(compile_reader(parse_source(text)) for text in spec.paths)
    separator = spec.separator

    def join(root: Any, item: Any) -> str:
        values = [read(root, item) for read in readers]
        try:
            texts = [text_of(v) for v in values if v is not MISSING and v is not None]
        except TransformFailed as exc:
            raise failed(f"concat: {exc.reason}") from exc
        return separator.join(texts)

    return join


def steps(spec: rules.Rule) -> tuple[tuple[str, Any, bool], ...]:
    """The rule's transforms as ``(name, run, scoped)``, in order (see :class:`Step`)."""
    built: list[Step] = [build_step(t) for t in spec.transforms]
    return tuple((step.name, step.run, step.scoped) for step in built)


def step_failed(name: str, value: Any, reason: str, origin: SourcePath | None) -> Failed:
    def render(where: str | None) -> str:
        at = f" at {where}" if where else ""
        return f"{name} failed on {show(value)}{at} ({reason})"

    return Failed(render, value, origin, source=True)


def finisher(as_: str | None, transformed: bool) -> tuple[Finish, frozenset[type]]:
    """The output form of a non-null value (see ``as`` in the engine's docstring), and the
    types it leaves as they are: a writer calls it only for the others."""
    if as_ is None and not transformed:
        unchanged = frozenset({str, int, bool, Decimal, dict, list})
    elif as_ is None:
        unchanged = frozenset({str, int, bool, dict, list})
    elif as_ == "string":
        unchanged = frozenset({str})
    else:
        unchanged = frozenset({int})
    return functools.partial(finish, as_=as_, transformed=transformed), unchanged


def finish(value: Any, as_: str | None, transformed: bool) -> Any:
    """The output form of a value; ``transformed``: the rule has transforms."""
    if value is None:
        return None
    if isinstance(value, datetime):
        value = iso_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise failed(f"{show(value)} is not a finite number", value)
    if as_ == "string":
        try:
            return text_of(value)
        except TransformFailed as exc:
            raise failed(f"as string: {exc.reason}", value) from exc
    if as_ == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        try:
            return decimal_of(value)
        except TransformFailed as exc:
            raise failed(f"as number: {show(value)} is {exc.reason}", value) from exc
    if isinstance(value, Decimal) and transformed:
        return decimal_text(value)
    return value
