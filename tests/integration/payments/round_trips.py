"""Counting PostgreSQL round trips of an engine, for the payments tests and ``bench payments``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy
from sqlalchemy import event


@contextmanager
def round_trips(engine: sqlalchemy.Engine) -> Iterator[list[int]]:
    """Round trips while the block runs (``[0]`` of what it yields): statements, BEGINs,
    COMMITs/ROLLBACKs and, with ``pool_pre_ping``, the ping of every checkout."""
    counted = [0]

    def one(*_: Any, **__: Any) -> None:
        counted[0] += 1

    hooks: list[tuple[Any, str]] = [(engine, "before_cursor_execute"), (engine, "begin")]
    hooks += [(engine, "commit"), (engine, "rollback")]
    if getattr(engine.pool, "_pre_ping", False):
        hooks.append((engine.pool, "checkout"))
    for target, name in hooks:
        event.listen(target, name, one)
    try:
        yield counted
    finally:
        for target, name in hooks:
            event.remove(target, name, one)
