"""One poller for every polled source: the REST sources of API Integration today, the CRM
change feeds and the GitHub events of the services to come.

A family of sources tells the poller three things (:class:`PolledSources`): *what to poll*
(``listing``: the sources, each with its claim key, interval and stored cursor, and the
invalid ones with their problems), *how to fetch a page* (``fetch``: the records after the
source's cursor and the cursor to poll with next) and *how to advance the cursor*
(``advance``). The poller does the rest, the same for every family:

- **interval**: each source is polled every ``interval_s``; the list is re-read every
  :data:`REFRESH_S` (a new source starts within that) and right after a poll moved a cursor;
- **cursor, at least once**: a page's records are published (``acks=all``, awaited) and only
  then is the cursor advanced. A crash in between publishes the page again, with the same
  event ids, and the consuming pipeline absorbs the duplicates;
- **claim**: every worker runs the poller, but a source is polled by one worker only, the
  first to take its PostgreSQL advisory lock (``sinks/claims.py``: ``lock_class`` is the
  family's namespace, the source's ``key`` the lock's second key). A dead worker's sources go
  to the next worker that asks; a source no longer listed is given up;
- **containment**: a failing poll (whatever the reason) is that source's alone: logged with
  its ``where``, counted in ``synapseops_source_failures_total{kind, reason="poll_failed"}``,
  and tried again after a backoff that doubles up to :data:`MAX_BACKOFF_S`, while every other
  source keeps its schedule. Misconfigured sources are said once (``MisconfiguredSources``).

A :class:`Poller` is a supervised unit (``streams/supervision.py``): ``run`` until ``stop``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy

from sinks.claims import AdvisoryClaims
from streams.source_metrics import SOURCE_FAILURES, MisconfiguredSources
from synapseops.errors import SynapseOpsError
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger

log = get_logger(__name__)

# How often the list of sources is re-read (new sources start polling within this).
REFRESH_S = 10.0
MAX_BACKOFF_S = 300.0
# How long the loop sleeps between looks at what is due (and so how fast it stops).
TICK_S = 0.5


class Polled(Protocol):
    """One source as listed: what the poller needs to schedule, claim and log it."""

    @property
    def key(self) -> int:
        """The claim key, unique within the family (a table row's id)."""
        ...

    @property
    def interval_s(self) -> float: ...

    @property
    def cursor(self) -> Any:
        """Where the source reads on from, as stored (None: never polled)."""
        ...

    @property
    def where(self) -> Mapping[str, str]:
        """The log fields that name the source (connector, endpoint, ...)."""
        ...


@dataclass(frozen=True)
class PolledRecord:
    """One record of a page, ready for Kafka (the family stamps the ingress headers)."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class Page:
    """What one fetch found: its records, in order, and the cursor to poll with next (equal to
    the source's cursor when nothing moved)."""

    records: Sequence[PolledRecord]
    cursor: Any


S = TypeVar("S", bound=Polled)


class PolledSources(Protocol[S]):
    """A family of polled sources. ``listing`` and ``advance`` do blocking I/O and run in a
    worker thread; ``fetch`` is awaited on the loop. Any of them may raise: the poller
    contains it (see the module doc)."""

    kind: str  # the family's name: the metrics label and log field ("rest", "crm", ...)
    lock_class: int  # the advisory-lock namespace of the family's keys

    def listing(self) -> tuple[Sequence[S], Mapping[str, list[str]]]:
        """What to poll: the valid sources, and ``name`` → problems of each invalid one."""
        ...

    async def fetch(self, source: S) -> Page:
        """How to fetch a page: the records after ``source.cursor`` and the next cursor."""
        ...

    def advance(self, source: S, cursor: Any) -> None:
        """How to advance the cursor: store ``cursor`` as the source's (after its records are
        durable on Kafka)."""
        ...


class Poller(Generic[S]):
    """Polls every due source of one family, one task for all of them (see the module doc)."""

    def __init__(
        self,
        sources: PolledSources[S],
        engine: sqlalchemy.Engine,
        producer: AsyncProducer,
        *,
        refresh_s: float = REFRESH_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        self.sources = sources
        self.producer = producer
        self.refresh_s = refresh_s
        self.max_backoff_s = max_backoff_s
        self.claims = AdvisoryClaims(engine, sources.lock_class)
        self._due: dict[int, float] = {}
        self._failures: dict[int, int] = {}  # key → polls failed in a row
        self._misconfigured = MisconfiguredSources(sources.kind)
        self._stopping = asyncio.Event()

    async def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        try:
            await self._poll_forever()
        finally:
            await asyncio.to_thread(self.claims.release_all)

    async def _poll_forever(self) -> None:
        listed: Sequence[S] = ()
        listed_at = -self.refresh_s
        while not self._stopping.is_set():
            now = time.monotonic()
            if now - listed_at >= self.refresh_s:
                listed = await self._list(listed)
                listed_at = now
            for source in listed:
                if self._stopping.is_set():
                    break
                if self._due.get(source.key, 0.0) > now:
                    continue
                if await self._poll_contained(source):
                    listed_at = -self.refresh_s  # re-read: the cursor moved
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=TICK_S)
            except TimeoutError:
                pass

    async def _list(self, known: Sequence[S]) -> Sequence[S]:
        try:
            listed, invalid = await asyncio.to_thread(self.sources.listing)
        except SynapseOpsError as exc:
            log.warning(
                "polled sources not read; keeping the last list",
                extra={"kind": self.sources.kind, "error": str(exc)},
            )
            return known
        self._misconfigured.report(invalid)
        keys = {source.key for source in listed}
        for gone in self.claims.held - keys:
            await asyncio.to_thread(self.claims.release, gone)
        return listed

    async def _poll_contained(self, source: S) -> bool:
        """Poll one source if this worker holds it; whether it polled. Any failure is this
        source's alone: logged, counted, and retried after its backoff."""
        now = time.monotonic()
        self._due[source.key] = now + source.interval_s
        try:
            if not await asyncio.to_thread(self.claims.claim, source.key):
                return False  # another worker polls this source
            await self.poll_once(source)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures = self._failures.get(source.key, 0) + 1
            self._failures[source.key] = failures
            delay = min(source.interval_s * 2 ** min(failures, 16), self.max_backoff_s)
            self._due[source.key] = now + max(delay, source.interval_s)
            SOURCE_FAILURES.labels(self.sources.kind, "poll_failed").inc()
            log.warning(
                "poll failed; this source tries again after its backoff",
                extra={
                    "kind": self.sources.kind,
                    **source.where,
                    "failures": failures,
                    "retry_in_s": delay,
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )
            return False
        self._failures.pop(source.key, None)
        return True

    async def poll_once(self, source: S) -> int:
        """Fetch one page after the cursor, publish its records, advance the cursor; the
        number of records published."""
        page = await self.sources.fetch(source)
        for record in page.records:
            await self.producer.send(
                record.topic, record.value, key=record.key, headers=record.headers
            )
        if page.cursor != source.cursor:
            await asyncio.to_thread(self.sources.advance, source, page.cursor)
        log.info(
            "polled",
            extra={"kind": self.sources.kind, **source.where, "items": len(page.records)},
        )
        return len(page.records)
