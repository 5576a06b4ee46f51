"""The product's engine (sinks/db.py) without a ping per checkout, against a real PostgreSQL
whose connections die under it (what a restart does to a pool)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy
from pydantic import SecretStr

from sinks.db import database_errors, make_engine
from synapseops.errors import DatabaseUnavailable
from synapseops.settings import DatabaseSettings, Settings

pytestmark = pytest.mark.integration


def test_no_ping_per_checkout() -> None:
    engine = make_engine(
        Settings(database=DatabaseSettings(url=SecretStr("postgresql+psycopg2://x@h/d")))
    )
    assert engine.pool._pre_ping is False


def test_connections_killed_under_the_pool_cost_one_failed_statement(database_url: str) -> None:
    engine = make_engine(Settings(database=DatabaseSettings(url=SecretStr(database_url))))

    def pid() -> int:
        with database_errors("probe"), engine.connect() as conn:
            return int(conn.scalar(sqlalchemy.text("SELECT pg_backend_pid()")))

    try:
        with ThreadPoolExecutor(4) as pool:
            pooled = set(pool.map(lambda _: pid(), range(8)))
        # What a restart does to every pooled connection: the server side is gone.
        killer = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.NullPool)
        with killer.connect() as conn:
            for backend in pooled:
                conn.execute(sqlalchemy.text(f"SELECT pg_terminate_backend({backend})"))
        killer.dispose()
        failures = 0
        for _ in range(len(pooled) + 2):
            try:
                assert pid() not in pooled
            except DatabaseUnavailable:
                failures += 1
        assert failures <= 1
    finally:
        engine.dispose()
