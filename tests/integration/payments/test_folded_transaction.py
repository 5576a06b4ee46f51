"""A folded transaction (BEGIN in its first message, COMMIT in its last) on a real PostgreSQL:
it commits all or nothing, and never hands a connection back to the pool inside a transaction
— after a failed statement, after a Python error between its messages, or when its block
forgets the COMMIT."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy
from sqlalchemy import exc as sa_exc

from sinks.driver_sql import Script, folded_transaction
from tests.integration.payments.test_payments_pipeline import database

__all__ = ["database"]

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database: str) -> Iterator[sqlalchemy.Engine]:
    # One pooled connection: whatever a transaction leaves behind, the next one gets.
    engine = sqlalchemy.create_engine(database, pool_size=1, max_overflow=0)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS folded")
        conn.exec_driver_sql("CREATE TABLE folded (n int PRIMARY KEY)")
    yield engine
    engine.dispose()


def numbers(engine: sqlalchemy.Engine) -> list[int]:
    with engine.connect() as conn:
        return [n for (n,) in conn.exec_driver_sql("SELECT n FROM folded ORDER BY n")]


def insert(*values: int) -> Script:
    script = Script()
    script.add_rows("INSERT INTO folded (n) VALUES {rows}", "(%s)", [(v,) for v in values])
    return script


def test_two_messages_commit_together(engine: sqlalchemy.Engine) -> None:
    with folded_transaction(engine) as conn:
        insert(1).run(conn, begin=True)
        insert(2, 3).run(conn, commit=True)
    assert numbers(engine) == [1, 2, 3]


def test_a_failed_statement_rolls_everything_back(engine: sqlalchemy.Engine) -> None:
    with pytest.raises(sa_exc.IntegrityError), folded_transaction(engine) as conn:
        insert(1).run(conn, begin=True)
        insert(2, 1).run(conn, commit=True)  # duplicate key: the COMMIT after it never runs
    assert numbers(engine) == []
    with folded_transaction(engine) as conn:  # the same pooled connection, usable again
        insert(4).run(conn, begin=True, commit=True)
    assert numbers(engine) == [4]


def test_an_error_between_its_messages_rolls_back(engine: sqlalchemy.Engine) -> None:
    with pytest.raises(ZeroDivisionError), folded_transaction(engine) as conn:
        insert(1).run(conn, begin=True)
        _ = 1 / 0
    # Read on the one pooled connection: inside the abandoned transaction it would see 1.
    assert numbers(engine) == []


def test_a_block_without_its_commit_is_rolled_back_and_an_error(engine: sqlalchemy.Engine) -> None:
    with (
        pytest.raises(RuntimeError, match="without its COMMIT"),
        folded_transaction(engine) as conn,
    ):
        insert(1).run(conn, begin=True)
    assert numbers(engine) == []
