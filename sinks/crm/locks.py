"""One pair synced by one handler at a time: advisory locks on the records of a batch.

Kafka keeps one key's events in order on one partition, but a pair can still be in two
handlers at once: an event waiting on a retry tier is handled by the tier's consumer while
the input topic goes on with the same pair's next change; and a record not linked yet is keyed
by its own id, so its first change (before the link) and a later one (after it, keyed by the
Salesforce id) may sit on different partitions. Two handlers that both read the pair before
either wrote write the same values twice — no wrong value, but a second write of one change.

So a batch holds PostgreSQL's transaction-level advisory locks, one per record it touches
(``(mapping, side, id)``, hashed to 32 bits: a collision only serialises two strangers), from
before it reads the links to the commit that saves them — on the one connection the batch
uses for its links, conflicts and counts. Every worker and every tier share them, and a
killed worker's locks go with its connection.

* :meth:`PairLocks.acquire` waits for the records the batch knows up front (its changes' own
  ids and their links' other side), in one sorted order, so two batches never wait on each
  other in a circle; past ``wait_s`` it raises :class:`~synapseops.errors.DatabaseUnavailable`
  (the road retries the batch).
* :meth:`PairLocks.take` tries the ids learnt later (a match found by key, a link made
  meanwhile) without waiting; a record another handler holds makes its pair fail with
  :class:`~synapseops.errors.RecordBusy` (retried on a tier, where it reads both sides again).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import sqlalchemy

from sinks.db import database_errors
from streams.crm.model import Side

# Advisory-lock namespace of CRM records (the feeds' is 7343).
PAIR_LOCK_CLASS = 7344
DEFAULT_WAIT_S = 60.0


def lock_key(mapping_id: int, side: Side, record_id: str) -> int:
    """The record's lock, a signed 32-bit int (PostgreSQL's two-key advisory lock form)."""
    unsigned = zlib.crc32(f"{mapping_id}:{side}:{record_id}".encode())
    return unsigned - 2**32 if unsigned >= 2**31 else unsigned


class PairLocks:
    """A batch's connection, its open transaction and the record locks it holds."""

    def __init__(
        self, engine: sqlalchemy.Engine, mapping_id: int, wait_s: float = DEFAULT_WAIT_S
    ) -> None:
        self.mapping_id = mapping_id
        self.wait_s = wait_s
        self.held: set[int] = set()
        with database_errors("crm: open the batch's connection"):
            self.conn = engine.connect()

    def acquire(self, records: Iterable[tuple[Side, str]]) -> None:
        keys = sorted({lock_key(self.mapping_id, s, i) for s, i in records} - self.held)
        if not keys:
            return
        with database_errors("crm: wait for the records' locks"):
            self.conn.execute(
                sqlalchemy.text("SELECT set_config('lock_timeout', :t, true)"),
                {"t": f"{int(self.wait_s * 1000)}ms"},
            )
            # one round trip, in the keys' order (the sorted subquery is scanned as sorted)
            self.conn.execute(
                sqlalchemy.text(
                    "SELECT count(pg_advisory_xact_lock(:c, k)) FROM"
                    " (SELECT k FROM unnest(CAST(:keys AS integer[])) AS k ORDER BY k) AS sorted"
                ),
                {"c": PAIR_LOCK_CLASS, "keys": keys},
            )
        self.held.update(keys)

    def take(self, records: Iterable[tuple[Side, str]]) -> bool:
        """Whether every one of ``records`` is this batch's now (none waited for)."""
        for side, record_id in records:
            key = lock_key(self.mapping_id, side, record_id)
            if key in self.held:
                continue
            with database_errors("crm: try a record's lock"):
                got = self.conn.execute(
                    sqlalchemy.text("SELECT pg_try_advisory_xact_lock(:c, :k)"),
                    {"c": PAIR_LOCK_CLASS, "k": key},
                ).scalar_one()
            if not got:
                return False
            self.held.add(key)
        return True

    def commit(self) -> None:
        """Commit what the batch wrote on this connection; every lock is released with it."""
        with database_errors("crm: commit the batch"):
            self.conn.commit()
        self.held.clear()

    def close(self) -> None:
        """Roll back whatever was not committed (the locks go with it) and give the
        connection back."""
        self.conn.close()
        self.held.clear()
