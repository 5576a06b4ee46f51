"""How a failing rule becomes a :class:`RuleError`, with its context built only then.

A compiled rule raises :class:`Failed` with what it knows at that moment: the value, the
source path that supplied it, and a function that writes the message once the concrete path
is known. The loop that ran the rule adds the rest — the rule's label, the concrete target
(``lines[1].unit_price``) and the concrete source path (``order.line_items[1].price``) — from a
:data:`Context`, which is four references per ``map_array`` item and no text: on the happy
path no message, path or excerpt of a value is ever formatted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from streams.mapping.errors import RuleError
from streams.mapping.paths import SourcePath

Context: TypeAlias = "tuple[Context, str, SourcePath, int] | None"
"""Where a rule runs: ``None`` at the top, else ``(parent, name, source, position)`` — the
``map_array`` rule's target name and source path, and the position of the item."""


class Failed(Exception):
    """One rule failed on one payload (never leaves the engine).

    ``render(where)`` writes the message given ``where``, the concrete text of ``path`` (or
    ``None`` when no path supplied the value); ``source`` says whether that path is the
    :attr:`RuleError.source` of the error.
    """

    def __init__(
        self,
        render: Callable[[str | None], str],
        value: Any = None,
        path: SourcePath | None = None,
        *,
        source: bool = False,
    ) -> None:
        super().__init__()
        self.render, self.value, self.path, self.source = render, value, path, source


def failed(message: str, value: Any = None) -> Failed:
    """A failure whose message needs no path."""
    return Failed(lambda _where: message, value)


@dataclass(frozen=True, slots=True)
class RuleName:
    """What an error says of its rule: ``index`` (top-level position), ``label`` (``"5.2"``)
    and ``name`` (the target keys joined: ``customer.email``)."""

    index: int
    label: str
    name: str

    def error(self, failure: Failed, context: Context) -> RuleError:
        prefix, item_path = _concrete(context)
        target = f"{prefix}.{self.name}" if prefix else self.name
        where = failure.path.below(item_path) if failure.path is not None else None
        message = f"rule {self.label} ({target}): {failure.render(where)}"
        source = where if failure.source else None
        return RuleError(self.index, self.label, target, message, failure.value, source)


def _concrete(context: Context) -> tuple[str, str]:
    """A context's concrete target prefix and item path (``lines[1]``, ``order.line_items[1]``)."""
    if context is None:
        return "", ""
    parent, name, path, position = context
    prefix, item_path = _concrete(parent)
    target = f"{prefix}.{name}" if prefix else name
    return f"{target}[{position}]", f"{path.below(item_path)}[{position}]"
