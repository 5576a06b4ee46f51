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


@contextmanager
def wire_round_trips(engine: sqlalchemy.Engine) -> Iterator[list[str]]:
    """Every message the driver sends while the block runs, as the text it sends: each
    statement, each BEGIN and COMMIT/ROLLBACK psycopg2 sends of its own (none on a connection
    in autocommit, whose transactions say BEGIN and COMMIT in their statements' text) — and an
    ``executemany`` as one message per parameter set, which is what psycopg2 sends for one
    (only ``insertmanyvalues`` batches them, and that counts once per statement it renders)."""
    sent: list[str] = []

    def statement(
        _conn: Any, _cursor: Any, text: str, parameters: Any, _context: Any, executemany: bool
    ) -> None:
        times = len(parameters) if executemany and isinstance(parameters, list) else 1
        sent.extend([text] * times)

    def driver_sends(conn: Any) -> bool:
        return not conn.connection.dbapi_connection.autocommit

    def begin(conn: Any) -> None:
        if driver_sends(conn):
            sent.append("BEGIN")

    def commit(conn: Any) -> None:
        if driver_sends(conn):
            sent.append("COMMIT")

    def rollback(conn: Any) -> None:
        if driver_sends(conn):
            sent.append("ROLLBACK")

    hooks: list[tuple[str, Any]] = [("before_cursor_execute", statement), ("begin", begin)]
    hooks += [("commit", commit), ("rollback", rollback)]
    for name, hook in hooks:
        event.listen(engine, name, hook)
    try:
        yield sent
    finally:
        for name, hook in hooks:
            event.remove(engine, name, hook)
