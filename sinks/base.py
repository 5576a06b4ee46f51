"""The sink base: everything that leaves the process goes through a :class:`Sink`.

The shape follows Quix Streams' ``BaseSink``/``BatchingSink``:

``setup()``
    check the destination once, at start-up (a sink that cannot work fails the start, not the
    first record);
``add(item)``
    buffer one item (cheap, never does I/O);
``flush()``
    write everything buffered with one ``write(batch)`` call and clear the buffer only when it
    succeeded, so a failed flush can be flushed again;
``write(batch)``
    the subclass's I/O.

The contract that callers rely on: a sink raises only :mod:`synapseops.errors` types.
Retryable trouble (the destination is down) is :class:`~synapseops.errors.SinkUnavailable` or
a more precise subclass such as :class:`~synapseops.errors.DatabaseUnavailable`; data the
destination refuses for good is a :class:`~synapseops.errors.FatalError`. A third-party
exception that slips through :meth:`Sink.write` is wrapped as ``SinkUnavailable`` at this
boundary, so psycopg2/sqlalchemy/httpx types never travel upward.

Sinks are blocking; async callers run ``flush`` in an executor.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, TypeVar

from synapseops.errors import SinkUnavailable, SynapseOpsError

T = TypeVar("T")


class Sink(ABC, Generic[T]):
    """A buffered writer to one destination. Subclasses implement :meth:`write`."""

    name: str = "sink"

    def __init__(self) -> None:
        self._batch: list[T] = []
        # add() and flush() may be called from the loop thread and an executor thread.
        self._lock = threading.Lock()

    def setup(self) -> None:
        """Check the destination can be reached; called once before the first record."""

    def add(self, item: T) -> None:
        with self._lock:
            self._batch.append(item)

    def pending(self) -> int:
        with self._lock:
            return len(self._batch)

    @abstractmethod
    def write(self, batch: Sequence[T]) -> int:
        """Write ``batch`` durably; return how many items were newly written.

        Items the destination already holds (duplicates absorbed by a unique key) are not
        counted, which is how callers tell "stored" from "duplicate".
        """

    def flush(self) -> int:
        """Write the buffered items; keep them buffered if the write failed."""
        with self._lock:
            batch = list(self._batch)
        if not batch:
            return 0
        written = self._guarded_write(batch)
        with self._lock:
            del self._batch[: len(batch)]
        return written

    def write_one(self, item: T) -> int:
        """Write a single item now, bypassing the buffer (per-record pipelines)."""
        return self._guarded_write([item])

    def _guarded_write(self, batch: Sequence[T]) -> int:
        try:
            return self.write(batch)
        except SynapseOpsError:
            raise
        except Exception as exc:
            # The subclass did not classify it: treat as "the destination is not working",
            # which keeps the record for a retry instead of dropping it.
            raise SinkUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from exc
