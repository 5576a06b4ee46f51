"""Claims by PostgreSQL advisory lock: which of several workers does one piece of work.

A claim is a session-level ``pg_try_advisory_lock(kind, key)`` taken on one connection that
the claimant keeps for as long as it works (a poller: its whole life). The claim is sticky —
the same worker keeps polling the same source, so nobody else's stale cursor competes — and
it goes with the connection: a worker that dies (its connection with it) frees its claims for
the next worker that asks.

Released claims are *unlocked on the same connection* (``pg_advisory_unlock_all``) before
that connection is let go. Letting the connection go is not enough: PostgreSQL frees a closed
session's locks only when its backend process has finished exiting, which is some time after
the client hung up, so a worker asking right after a release would be refused a claim nobody
holds any more (and a pooled connection given back with its locks would hold them for
nobody in particular). A connection we cannot unlock on is invalidated, never pooled.
"""

from __future__ import annotations

import sqlalchemy

from synapseops.logging import get_logger

log = get_logger(__name__)

_TRY = sqlalchemy.text("SELECT pg_try_advisory_lock(:kind, :key)")
_UNLOCK = sqlalchemy.text("SELECT pg_advisory_unlock(:kind, :key)")
_UNLOCK_ALL = sqlalchemy.text("SELECT pg_advisory_unlock_all()")
_ALIVE = sqlalchemy.text("SELECT 1")


class AdvisoryClaims:
    """The claims of one worker in one advisory-lock namespace (``kind``, a 32-bit int).

    Not thread-safe: one task uses it (its calls may run in a worker thread, one at a time).
    """

    def __init__(self, engine: sqlalchemy.Engine, kind: int) -> None:
        self.engine = engine
        self.kind = kind
        self._conn: sqlalchemy.Connection | None = None
        self._held: set[int] = set()

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._held)

    def claim(self, key: int) -> bool:
        """Whether this worker holds ``key`` now (taking it if it is free). A lost connection
        drops every claim and answers False; the next call starts over on a fresh one."""
        try:
            if self._conn is None:
                self._conn = self.engine.connect()
                self._held.clear()
            if key in self._held:
                # The claims live with the connection: one that died took them along.
                self._conn.execute(_ALIVE)
                self._conn.commit()
                return True
            taken = bool(self._conn.execute(_TRY, {"kind": self.kind, "key": key}).scalar_one())
            self._conn.commit()  # session-level: the lock outlives the transaction
        except sqlalchemy.exc.SQLAlchemyError:
            log.warning("claim connection lost; claims dropped", extra={"kind": self.kind})
            self._discard()
            return False
        if taken:
            self._held.add(key)
        return taken

    def release(self, key: int) -> None:
        """Give ``key`` up (work that is gone: a source no longer listed)."""
        if key not in self._held or self._conn is None:
            return
        self._held.discard(key)
        try:
            self._conn.execute(_UNLOCK, {"kind": self.kind, "key": key})
            self._conn.commit()
        except sqlalchemy.exc.SQLAlchemyError:
            self._discard()

    def release_all(self) -> None:
        """Give every claim up, on the connection that holds them, then return it."""
        if self._conn is None:
            return
        try:
            self._conn.execute(_UNLOCK_ALL)
            self._conn.commit()
            self._conn.close()
        except sqlalchemy.exc.SQLAlchemyError:
            self._discard()
        self._conn = None
        self._held.clear()

    def _discard(self) -> None:
        # Invalidate, not close: a connection whose locks we could not drop must not go back
        # to the pool with them.
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except sqlalchemy.exc.SQLAlchemyError:
                pass
        self._conn = None
        self._held.clear()
