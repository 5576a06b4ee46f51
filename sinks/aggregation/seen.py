"""The pipeline's de-duplication on the road: which ``(source, id)`` are on the canonical
topic already.

A batch claims its keys in a transaction (:meth:`SeenKeys.claim`: one INSERT … ON CONFLICT DO
NOTHING RETURNING), publishes only the keys it won, and commits the claim once the broker has
them (:meth:`SeenKeys.settle`, releasing the keys whose produce failed). A crash between the
produce and the commit leaves no claim: the redelivered batch publishes those events again
(at least once on the wire; the warehouse's primary key takes the copy). A claim never
commits for an event that did not land, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import sqlalchemy
from sqlalchemy import tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sinks.aggregation.tables import seen
from sinks.db import database_errors

Key = tuple[str, str]


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
