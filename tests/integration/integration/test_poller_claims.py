"""Several workers, one poller per REST endpoint: PostgreSQL advisory locks decide who polls."""

from __future__ import annotations

import time

import sqlalchemy

from sinks.claims import AdvisoryClaims
from streams.integration.poller import POLL_LOCK_CLASS, RestPoller
from synapseops.settings import Settings

# Lock keys far above any endpoint id a test creates.
BASE_KEY = 900_000


def test_one_worker_polls_an_endpoint_and_a_stopped_ones_endpoints_move_on(
    settings: Settings, database_url: str
) -> None:
    engine = sqlalchemy.create_engine(database_url)
    first = RestPoller(settings, engine, producer=None)  # type: ignore[arg-type]
    second = RestPoller(settings, engine, producer=None)  # type: ignore[arg-type]
    endpoint = BASE_KEY + id(first) % 50_000
    try:
        assert first.claims.kind == second.claims.kind == POLL_LOCK_CLASS
        assert first.claims.claim(endpoint) is True
        assert first.claims.claim(endpoint) is True  # still its own
        assert second.claims.claim(endpoint) is False
        assert second.claims.claim(endpoint + 1) is True  # another endpoint is free
        first.claims.release_all()  # the worker stopped: its claims are given up
        assert second.claims.claim(endpoint) is True
        assert first.claims.claim(endpoint) is False
    finally:
        first.claims.release_all()
        second.claims.release_all()
        engine.dispose()


def test_a_released_claim_is_free_for_the_next_worker_at_once(database_url: str) -> None:
    """The flake of old: claims were released by dropping the connection, and PostgreSQL frees
    a dropped session's locks only once its backend has exited, so the next worker was often
    refused a claim nobody held. Released on the same connection, the hand-over is immediate
    every time (the old release failed this loop within a few hundred rounds)."""
    engine = sqlalchemy.create_engine(database_url)
    try:
        for round_ in range(300):
            key = BASE_KEY + 50_000 + round_
            first, second = AdvisoryClaims(engine, 7_001), AdvisoryClaims(engine, 7_001)
            assert first.claim(key) is True
            assert second.claim(key) is False
            first.release_all()
            assert second.claim(key) is True, f"round {round_}: a released claim still held"
            second.release_all()
        # Every connection went back to the pool without a lock: nothing is held by nobody.
        with engine.connect() as conn:
            held = conn.execute(
                sqlalchemy.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7001"
                )
            ).scalar_one()
        assert held == 0
    finally:
        engine.dispose()


def test_a_dead_workers_claims_go_to_the_next_one_that_asks(database_url: str) -> None:
    engine = sqlalchemy.create_engine(database_url)
    dead, alive = AdvisoryClaims(engine, 7_002), AdvisoryClaims(engine, 7_002)
    key = BASE_KEY + 60_000
    try:
        assert dead.claim(key) is True
        # The worker dies: its session is gone without a word (as when the process is killed).
        with engine.connect() as conn:
            conn.execute(
                sqlalchemy.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND classid = 7002 AND objid = :key"
                ),
                {"key": key},
            )
            conn.commit()
        deadline = time.monotonic() + 10
        while not alive.claim(key):
            assert time.monotonic() < deadline, "a dead session's claim never came free"
            time.sleep(0.05)
        # The dead one finds out on its next look, and claims nothing it does not hold.
        assert dead.claim(key) is False
        assert dead.held == frozenset()
    finally:
        dead.release_all()
        alive.release_all()
        engine.dispose()


def test_a_claim_given_up_alone_leaves_the_others_held(database_url: str) -> None:
    engine = sqlalchemy.create_engine(database_url)
    mine, other = AdvisoryClaims(engine, 7_003), AdvisoryClaims(engine, 7_003)
    key = BASE_KEY + 70_000
    try:
        assert mine.claim(key) and mine.claim(key + 1)
        mine.release(key)  # its source is no longer listed
        assert mine.held == frozenset({key + 1})
        assert other.claim(key) is True
        assert other.claim(key + 1) is False
    finally:
        mine.release_all()
        other.release_all()
        engine.dispose()
