"""The pipeline's de-duplication on the road: which ``(source, id)`` are on the canonical
topic already.

A batch claims its keys in a transaction (:meth:`SeenKeys.claim`: one INSERT … ON CONFLICT DO
NOTHING RETURNING), publishes only the keys it won, and commits the claim once the broker has
them (:meth:`SeenKeys.settle`, releasing the keys whose produce failed). A crash between the
produce and the commit leaves no claim: the redelivered batch publishes those events again
(at least once on the wire; the warehouse's primary key takes the copy). A claim never
commits for an event that did not land, so nothing is lost.

Keys are kept for a retention (:meth:`SeenKeys.prune`, run by
:class:`~streams.aggregation.pruning.SeenPruner`): a copy of an event older than that is
published again, and the warehouse's primary key takes it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import sqlalchemy
from sqlalchemy import tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sinks.aggregation.tables import seen
from sinks.db import database_errors

Key = tuple[str, str]
PRUNE_BATCH = 5000
# One batch of old keys; SKIP LOCKED: two workers pruning at once take different rows, and
# neither waits on a claim in flight.
_PRUNE = sqlalchemy.text(
    "DELETE FROM aggregation_seen WHERE (source, id) IN (SELECT source, id FROM "
    "aggregation_seen WHERE seen_at < :cutoff LIMIT :batch FOR UPDATE SKIP LOCKED)"
)


class Claim:
    """An open transaction holding the keys it won; settle or abort it exactly once."""

    def __init__(self, connection: sqlalchemy.Connection, won: set[Key]) -> None:
        self.connection = connection
        self.won = won


class SeenKeys:
    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine

    def claim(self, keys: Sequence[Key]) -> Claim:
        """Begin a transaction and claim ``keys`` (blocking); the claim holds the new ones."""
        connection = self.engine.connect()
        try:
            with database_errors("claiming canonical event keys"):
                connection.begin()
                won: set[Key] = set()
                if keys:
                    rows = [{"source": source, "id": key} for source, key in dict.fromkeys(keys)]
                    statement = (
                        pg_insert(seen)
                        .values(rows)
                        .on_conflict_do_nothing()
                        .returning(seen.c.source, seen.c.id)
                    )
                    won = {(row.source, row.id) for row in connection.execute(statement)}
        except BaseException:
            connection.close()
            raise
        return Claim(connection, won)

    def settle(self, claim: Claim, failed: Collection[Key]) -> None:
        """Release the keys whose events did not land, commit the rest (blocking)."""
        try:
            with database_errors("committing canonical event keys"):
                if failed:
                    claim.connection.execute(
                        seen.delete().where(tuple_(seen.c.source, seen.c.id).in_(list(failed)))
                    )
                claim.connection.commit()
        finally:
            claim.connection.close()

    def abort(self, claim: Claim) -> None:
        """Give every key of the claim back (blocking)."""
        claim.connection.close()  # closing rolls the open transaction back

    def prune(self, cutoff: datetime, batch: int = PRUNE_BATCH) -> int:
        """Delete the keys seen before ``cutoff``, ``batch`` per transaction so that no lock
        is held long (blocking); how many were deleted."""
        deleted = 0
        while True:
            with database_errors("pruning canonical event keys"), self.engine.begin() as conn:
                count = conn.execute(_PRUNE, {"cutoff": cutoff, "batch": batch}).rowcount
            deleted += count
            if count < batch:
                return deleted
