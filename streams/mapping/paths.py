"""Source and target paths of the mapping rule language.

Source paths read a decoded JSON payload::

    order.line_items[0].price      keys and list indexes
    a.b[-1]                        negative indexes count from the end
    attributes["service.name"]     a quoted key may hold dots or brackets
    $.order.currency               ``$`` anchors at the payload root (inside ``map_array``)
    @  @.sku  [0]                  ``@`` is the current item itself (the root at top level)

A path that does not resolve (missing key, index out of range, a key asked of a list, an
index asked of a dict) reads as :data:`MISSING`; :func:`resolve` turns that into ``None``.

Target paths build the output: dotted names (``customer.email``), and on a ``map_array``
rule an optional ``[]`` suffix (``lines[]``) that says the value is a list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

Segment = str | int


class _Missing:
    """The value of a path that does not resolve (distinct from a JSON ``null``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


class PathSyntaxError(ValueError):
    """A path string that is not in the grammar above."""


@dataclass(frozen=True, slots=True)
class SourcePath:
    """A parsed source path: where it is anchored and the segments below the anchor."""

    text: str
    from_root: bool
    segments: tuple[Segment, ...]
    rendered: str = ""  # the segments written canonically (``a.b[0]``), for messages

    def below(self, prefix: str) -> str:
        """The concrete path of this one under ``prefix`` (the current item's path)."""
        if self.from_root or not prefix:
            return self.rendered or "$"
        if not self.rendered:
            return prefix
        return prefix + self.rendered if self.rendered[0] == "[" else f"{prefix}.{self.rendered}"


_NAME = re.compile(r"[^.\[\]\"$@\s]+")
_INDEX = re.compile(r"\[(-?\d+)\]")
_QUOTED = re.compile(r'\["((?:[^"\\]|\\.)*)"\]')


def parse_source(text: str) -> SourcePath:
    """Parse a source path; raises :class:`PathSyntaxError` naming the bad position."""
    if not isinstance(text, str) or not text.strip():
        raise PathSyntaxError("a path must be a non-empty string")
    text = text.strip()
    from_root = text.startswith("$")
    anchored = from_root or text.startswith("@")
    pos = 1 if anchored else 0
    segments: list[Segment] = []
    # After an anchor, or before a leading index ("[0].sku" on a list item), no key is due.
    expect_name = not anchored and not text.startswith("[")
    while pos < len(text):
        if expect_name:
            match = _NAME.match(text, pos)
            if match is None:
                raise PathSyntaxError(f"expected a key at position {pos} in {text!r}")
            segments.append(match.group())
            pos = match.end()
            expect_name = False
            continue
        if text[pos] == ".":
            pos += 1
            expect_name = True
            continue
        if (index := _INDEX.match(text, pos)) is not None:
            segments.append(int(index.group(1)))
            pos = index.end()
            continue
        if (quoted := _QUOTED.match(text, pos)) is not None:
            segments.append(re.sub(r"\\(.)", r"\1", quoted.group(1)))
            pos = quoted.end()
            continue
        raise PathSyntaxError(f"unexpected {text[pos]!r} at position {pos} in {text!r}")
    if expect_name:
        raise PathSyntaxError(f"path {text!r} ends where a key is expected")
    return SourcePath(text, from_root, tuple(segments), format_segments(segments))


def get(data: Any, segments: Sequence[Segment]) -> Any:
    """Walk ``segments`` into ``data``; :data:`MISSING` when any step does not resolve."""
    current = data
    for segment in segments:
        if isinstance(segment, int):
            # bool is an int in Python; a payload list is never indexed by one.
            if not isinstance(current, list) or isinstance(segment, bool):
                return MISSING
            if not -len(current) <= segment < len(current):
                return MISSING
            current = current[segment]
        else:
            if not isinstance(current, Mapping) or segment not in current:
                return MISSING
            current = current[segment]
    return current


Read = Callable[[Any, Any], Any]
"""A compiled source path: ``read(root, item)`` is :func:`get` from the path's anchor."""


def compile_reader(path: SourcePath) -> Read:
    """The path as one closure over ``(root, item)``, equal to :func:`get` from its anchor.

    Paths are compiled when a mapping is, so a record pays one call per read. Decoded JSON
    objects are plain ``dict``: up to three keys over them take an unrolled fast path, and
    anything else (indexes, other mappings, longer chains) walks with :func:`get`.
    """
    segments, at_root = path.segments, path.from_root
    keys = segments if all(type(s) is str for s in segments) else ()
    if not segments:
        return lambda root, item: root if at_root else item
    if len(keys) == 1:
        (key,) = keys

        def one(root: Any, item: Any) -> Any:
            data = root if at_root else item
            return data.get(key, MISSING) if type(data) is dict else get(data, keys)

        return one
    if len(keys) == 2:
        first, second = keys

        def two(root: Any, item: Any) -> Any:
            data = root if at_root else item
            if type(data) is not dict:
                return get(data, keys)
            node = data.get(first, MISSING)
            return node.get(second, MISSING) if type(node) is dict else get(node, keys[1:])

        return two
    if len(keys) == 3:
        first, second, third = keys

        def three(root: Any, item: Any) -> Any:
            data = root if at_root else item
            if type(data) is dict:
                node = data.get(first)
                if type(node) is dict:
                    node = node.get(second)
                    if type(node) is dict:
                        return node.get(third, MISSING)
            return _walk(data, keys)

        return three
    return lambda root, item: _walk(root if at_root else item, segments)


def _walk(data: Any, segments: Sequence[Segment]) -> Any:
    """:func:`get`, with the steps of decoded JSON first: a key of a ``dict``, an index of a
    ``list`` (a segment is a ``str`` or an ``int``, never a ``bool``: see :func:`parse_source`)."""
    current = data
    for segment in segments:
        kind = type(current)
        if kind is dict and type(segment) is str:
            current = current.get(segment, MISSING)
            if current is MISSING:
                return MISSING
        elif kind is list and type(segment) is int:
            if not -len(current) <= segment < len(current):
                return MISSING
            current = current[segment]
        else:
            current = get(current, (segment,))
            if current is MISSING:
                return MISSING
    return current


def resolve(data: Any, path: str) -> Any:
    """The value at ``path`` in ``data`` (anchors are ignored: ``data`` is the context); a
    missing value is ``None``."""
    value = get(data, parse_source(path).segments)
    return None if value is MISSING else value


def format_segments(segments: Sequence[Segment], prefix: str = "") -> str:
    """Render segments as a concrete path (``order.line_items[1].price``) below ``prefix``."""
    out = prefix
    for segment in segments:
        if isinstance(segment, int):
            out += f"[{segment}]"
        elif _NAME.fullmatch(segment):
            out += f".{segment}" if out else segment
        else:
            escaped = segment.replace("\\", "\\\\").replace('"', '\\"')
            out += f'["{escaped}"]'
    return out


@dataclass(frozen=True, slots=True)
class TargetPath:
    """A parsed target: the nested output keys, and whether it was written ``name[]``."""

    text: str
    keys: tuple[str, ...]
    is_list: bool


_TARGET_KEY = re.compile(r"[^.\[\]\s\"$@]+")


def parse_target(text: str) -> TargetPath:
    """Parse a target path (``erp.customer.email``, ``lines[]``)."""
    if not isinstance(text, str) or not text.strip():
        raise PathSyntaxError("a target must be a non-empty string")
    text = text.strip()
    body, is_list = (text[:-2], True) if text.endswith("[]") else (text, False)
    keys = tuple(body.split("."))
    for key in keys:
        if not _TARGET_KEY.fullmatch(key):
            raise PathSyntaxError(
                f"target {text!r}: {key!r} is not a key (dotted names, optional [] at the end)"
            )
    return TargetPath(text, keys, is_list)


def set_path(out: dict[str, Any], keys: Sequence[str], value: Any) -> None:
    """Write ``value`` at ``keys`` in ``out``, creating the nested dicts on the way.

    Conflicting targets (``a`` and ``a.b``) are refused when a mapping is compiled, so every
    intermediate value met here is a dict this function created.
    """
    node = out
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed ``template``: literal text and source paths, alternating."""

    text: str
    parts: tuple[str | SourcePath, ...]


def parse_template(text: str) -> Template:
    """``"{first_name} {last_name}"`` → parts; ``{{`` and ``}}`` are literal braces.

    The placeholders are paths only — there is no expression language to evaluate.
    """
    parts: list[str | SourcePath] = []
    literal = ""
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char in "{}" and text[pos : pos + 2] in ("{{", "}}"):
            literal += char
            pos += 2
        elif char == "{":
            end = text.find("}", pos)
            if end < 0:
                raise PathSyntaxError(f"'{{' at position {pos} is not closed")
            if literal:
                parts.append(literal)
                literal = ""
            parts.append(parse_source(text[pos + 1 : end]))
            pos = end + 1
        elif char == "}":
            raise PathSyntaxError(f"lone '}}' at position {pos} (write '}}}}')")
        else:
            literal += char
            pos += 1
    if literal:
        parts.append(literal)
    return Template(text, tuple(parts))
