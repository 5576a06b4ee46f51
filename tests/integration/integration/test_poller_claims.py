"""Several workers, one poller per REST endpoint: PostgreSQL advisory locks decide who polls."""

from __future__ import annotations

import sqlalchemy

from streams.integration.poller import RestPoller
from synapseops.settings import Settings


def test_one_worker_polls_an_endpoint_and_a_dead_ones_endpoints_move_on(
    settings: Settings, database_url: str
) -> None:
    engine = sqlalchemy.create_engine(database_url)
    first = RestPoller(settings, engine, producer=None)  # type: ignore[arg-type]
    second = RestPoller(settings, engine, producer=None)  # type: ignore[arg-type]
    endpoint = 900_000 + id(first) % 100_000
    try:
        assert first._claim(endpoint) is True
        assert first._claim(endpoint) is True  # still its own
        assert second._claim(endpoint) is False
        assert second._claim(endpoint + 1) is True  # another endpoint is free
        first._release_claims()  # the worker died: its connection, and so its locks, are gone
        assert second._claim(endpoint) is True
        assert first._claim(endpoint) is False
    finally:
        first._release_claims()
        second._release_claims()
        engine.dispose()
