"""The ``replays`` rows: one per replay request, its ``Idempotency-Key`` and its lease.

A key names one replay of one filter:

- the first request with a key inserts the row and holds its lease (a random token and a
  ``heartbeat_at`` it renews every ``SYNAPSEOPS_REPLAY_HEARTBEAT_S`` while it runs);
- a repeat with the same key and the same filter gets the stored answer once there is one,
  :class:`ReplayInProgress` while the lease is fresh, and takes the replay over (same replay
  id, a new token) once the lease is older than ``SYNAPSEOPS_REPLAY_LEASE_S``: the process
  that held it died (``kill -9``, a lost host) and will never answer. Taking over is safe
  because rows are sent one by one under a row lock and marked ``replayed`` as they go; at
  most the one row the dead process sent but did not mark is sent again, and effects are
  idempotent (docs/ARCHITECTURE.md, the reliability road);
- a repeat with the same key and another filter is refused (:class:`ReplayKeyReused`, 422):
  the key would otherwise answer for a replay that was never asked for;
- a replay that failed (Kafka down) gives its key back, so the request may be repeated.

Renewals, the answer and the failure all check the token: a replay that lost its lease to a
takeover (it stalled past the lease) notices at its next renewal and stops
(:class:`ReplayLeaseLost`), and never overwrites the new owner's answer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sinks.db import database_errors
from sinks.dead_letters.replay_filter import DeadLetterFilter
from sinks.dead_letters.tables import replays
from synapseops.errors import ReplayInProgress, ReplayKeyReused, SynapseOpsError
from synapseops.logging import get_logger
from synapseops.settings import ReplaySettings

log = get_logger(__name__)


@dataclass(frozen=True)
class ReplayResult:
    replay_id: str
    matched: int
    replayed: int

    def as_json(self) -> dict[str, Any]:
        return {"replay_id": self.replay_id, "matched": self.matched, "replayed": self.replayed}


@dataclass(frozen=True)
class Lease:
    replay_id: str
    token: str
    taken_over: bool = False


class ReplayRequests:
    """Blocking reads and writes of ``replays`` (run them in a thread from async code)."""

    def __init__(self, engine: sqlalchemy.Engine, settings: ReplaySettings | None = None):
        self.engine = engine
        self.settings = settings or ReplaySettings()

    def open(
        self,
        replay_id: str,
        key: str | None,
        criteria: DeadLetterFilter,
        *,
        dry_run: bool,
        requested_by: str | None,
    ) -> Lease | ReplayResult:
        """A lease to run the replay, or the earlier answer of the same key and filter."""
        token = os.urandom(16).hex()
        wanted = criteria.canonical()
        statement = (
            pg_insert(replays)
            .values(
                replay_id=replay_id,
                idempotency_key=key,
                filter=wanted,
                dry_run=dry_run,
                requested_by=requested_by,
                lease_token=token,
                heartbeat_at=func.now(),
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(replays.c.replay_id)
        )
        c = replays.c
        with database_errors("replays open"), self.engine.begin() as conn:
            if conn.execute(statement).scalar_one_or_none() is not None:
                return Lease(replay_id, token)
            earlier = (
                conn.execute(
                    select(
                        c.replay_id,
                        c.filter,
                        c.response,
                        func.extract(
                            "epoch", func.now() - func.coalesce(c.heartbeat_at, c.created_at)
                        ).label("age_s"),
                    )
                    .where(c.idempotency_key == key)
                    .with_for_update()
                )
                .mappings()
                .one()
            )
            if not _same_filter(earlier["filter"], wanted):
                raise ReplayKeyReused(
                    f"Idempotency-Key {key!r} was first used for the filter "
                    f"{earlier['filter']}, not {wanted}; a different replay needs a new key"
                )
            if earlier["response"] is not None:
                return _result(earlier["response"])
            age_s = float(earlier["age_s"])
            if age_s < self.settings.lease_s:
                raise ReplayInProgress(
                    f"a replay with Idempotency-Key {key!r} is still running "
                    f"(renewed {age_s:.0f}s ago)",
                    retry_after_s=max(1.0, self.settings.lease_s - age_s),
                )
            conn.execute(
                update(replays)
                .where(c.replay_id == earlier["replay_id"])
                .values(lease_token=token, heartbeat_at=func.now(), requested_by=requested_by)
            )
        log.warning(
            "replay taken over: its lease went stale (the process running it died)",
            extra={"replay_id": earlier["replay_id"], "stale_s": round(age_s, 1)},
        )
        return Lease(str(earlier["replay_id"]), token, taken_over=True)

    def renew(self, lease: Lease) -> bool:
        """Renew the lease; ``False`` if another request holds it now."""
        return self._update(lease, "replays renew", heartbeat_at=func.now())

    def finish(self, lease: Lease, result: ReplayResult) -> bool:
        return self._update(
            lease,
            "replays finish",
            matched=result.matched,
            replayed=result.replayed,
            finished_at=func.now(),
            response=result.as_json(),
        )

    def fail(self, lease: Lease, exc: BaseException) -> None:
        # Give the key back: repeating the request then replays the rows still dead.
        try:
            self._update(
                lease,
                "replays fail",
                idempotency_key=None,
                finished_at=func.now(),
                response={"replay_id": lease.replay_id, "error": type(exc).__name__},
            )
        except SynapseOpsError:
            log.exception(
                "could not record the failed replay", extra={"replay_id": lease.replay_id}
            )

    def _update(self, lease: Lease, what: str, **values: Any) -> bool:
        statement = (
            update(replays)
            .where(replays.c.replay_id == lease.replay_id, replays.c.lease_token == lease.token)
            .values(**values)
        )
        with database_errors(what), self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    @asynccontextmanager
    async def held(self, lease: Lease) -> AsyncIterator[asyncio.Event]:
        """Renew ``lease`` in the background while the body runs; the event is set once the
        lease was lost (the body should stop). A failed renewal (database down) is retried
        at the next beat: only the lease's age decides a takeover."""
        lost = asyncio.Event()

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.settings.heartbeat_s)
                try:
                    if not await asyncio.to_thread(self.renew, lease):
                        lost.set()
                        return
                except SynapseOpsError as exc:
                    log.warning(
                        "replay lease not renewed; trying again",
                        extra={"replay_id": lease.replay_id, "error": str(exc)},
                    )

        task = asyncio.create_task(beat(), name=f"replay-lease:{lease.replay_id}")
        try:
            yield lost
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _same_filter(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    # Rows from before canonical filters were stored: compare their canonical form too.
    try:
        return DeadLetterFilter.model_validate(dict(stored)).canonical() == dict(wanted)
    except ValueError:
        return False


def _result(response: Mapping[str, Any]) -> ReplayResult:
    return ReplayResult(
        replay_id=str(response["replay_id"]),
        matched=int(response["matched"]),
        replayed=int(response["replayed"]),
    )
