"""Polled REST sources: every ``poll_interval_s``, fetch what changed since the cursor and
publish each item to ``integration.events``; then, and only then, save the new cursor.

A source endpoint polls when its connector's protocol is ``rest`` and it has
``poll_interval_s``. Its ``config`` says how to read the answer (defaults in brackets)::

    {"cursor_param": "since",          # query parameter carrying the cursor       [since]
     "items_path": "changes",          # where the list of items is                [items]
     "next_cursor_path": "last_seq",   # where the next cursor is; else the last
                                       # item's item_cursor_path                   [cursor]
     "item_id_path": "seq",            # the item's id: its event id               [id]
     "entity_key_path": "id",          # the Kafka key                             [item id]
     "params": {"limit": 500}}         # extra query parameters

Crash between publishing and saving the cursor → the items are published again with the
same event ids, and the delivery pipeline absorbs them (one succeeded Run per flow and
event). Paths use the mapping engine's syntax (:func:`streams.mapping.resolve`).

The config is checked by :class:`~streams.integration.source_config.PollConfig` — the same
check the API runs on write; an endpoint that fails it is skipped and logged. Errors are
contained per endpoint: a poll that fails (whatever the reason) is logged with its endpoint
and tried again after a backoff that doubles up to :data:`MAX_BACKOFF_S`, while every other
endpoint keeps its own schedule. The poller is a supervised task (``streams/supervision.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import sqlalchemy
from sqlalchemy import select, update

from sinks.db import database_errors
from sinks.http import HttpTarget
from sinks.integration.credentials import auth_headers
from sinks.integration.store import load_credential
from sinks.integration.tables import connectors, endpoints, flows
from streams.integration.metrics import SOURCE_FAILURES, MisconfiguredSources
from streams.integration.source_config import (
    PollConfig,
    ReservedTopics,
    source_endpoint_problems,
)
from streams.mapping import dump_output, load_payload, resolve
from synapseops import headers as kh
from synapseops.errors import SynapseOpsError
from synapseops.ids import new_traceparent
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import INTEGRATION_EVENTS

log = get_logger(__name__)

# How often the list of polled endpoints is re-read (new flows start polling within this).
REFRESH_S = 10.0
MAX_BACKOFF_S = 300.0


@dataclass(frozen=True)
class PolledEndpoint:
    endpoint_id: int
    connector: str
    endpoint: str
    base_url: str
    path: str
    interval_s: float
    cursor: Any
    config: PollConfig
    credential_id: int | None

    @property
    def where(self) -> dict[str, str]:
        return {"connector": self.connector, "endpoint": self.endpoint}


@dataclass(frozen=True)
class PolledItem:
    event_id: str
    entity_key: str
    body: bytes


def read_page(
    answer: Any, config: PollConfig | Mapping[str, Any], cursor: Any
) -> tuple[list[PolledItem], Any]:
    """The items of one answer and the cursor to poll with next (pure)."""
    if not isinstance(config, PollConfig):
        config = PollConfig.model_validate(dict(config))
    items = resolve(answer, config.items_path)
    if not isinstance(items, list):
        items = []
    id_path, key_path = config.item_id_path, config.key_path
    found: list[PolledItem] = []
    for item in items:
        item_id = resolve(item, id_path)
        if item_id is None:
            continue
        key = resolve(item, key_path)
        found.append(
            PolledItem(
                event_id=str(item_id),
                entity_key=str(key if key is not None else item_id),
                body=dump_output(item),
            )
        )
    next_cursor = resolve(answer, config.next_cursor_path)
    return found, cursor if next_cursor is None else next_cursor


def polled_endpoints(
    engine: sqlalchemy.Engine,
) -> tuple[list[PolledEndpoint], dict[str, list[str]]]:
    """Source endpoints of ``rest`` connectors with an interval and at least one enabled flow,
    and ``connector/endpoint`` → the problems of each invalid one (skipped)."""
    statement = (
        select(
            endpoints.c.id,
            endpoints.c.name,
            endpoints.c.direction,
            endpoints.c.path,
            endpoints.c.poll_interval_s,
            endpoints.c.cursor,
            endpoints.c.config,
            endpoints.c.secret_credential_id,
            connectors.c.name.label("connector"),
            connectors.c.base_url,
        )
        .join(connectors, connectors.c.id == endpoints.c.connector_id)
        .where(
            connectors.c.protocol == "rest",
            endpoints.c.direction == "source",
            endpoints.c.poll_interval_s.is_not(None),
            select(flows.c.id)
            .where(flows.c.source_endpoint_id == endpoints.c.id, flows.c.enabled)
            .exists(),
        )
    )
    with database_errors("read polled endpoints"), engine.connect() as conn:
        rows = conn.execute(statement).mappings().all()
    found: list[PolledEndpoint] = []
    invalid: dict[str, list[str]] = {}
    for row in rows:
        problems = source_endpoint_problems("rest", dict(row), _NO_TOPICS)
        if problems:
            invalid[f"{row['connector']}/{row['name']}"] = problems
            continue
        found.append(
            PolledEndpoint(
                endpoint_id=int(row["id"]),
                connector=str(row["connector"]),
                endpoint=str(row["name"]),
                base_url=str(row["base_url"] or ""),
                path=str(row["path"]),
                interval_s=float(row["poll_interval_s"]),
                cursor=row["cursor"],
                config=PollConfig.model_validate(dict(row["config"] or {})),
                credential_id=row["secret_credential_id"],
            )
        )
    return found, invalid


# A REST source reads no topic; the check needs no reserved names.
_NO_TOPICS = ReservedTopics(frozenset(), ())


def save_cursor(engine: sqlalchemy.Engine, endpoint_id: int, cursor: Any) -> None:
    document = load_payload(dump_output(cursor))
    with database_errors("save poll cursor"), engine.begin() as conn:
        conn.execute(update(endpoints).where(endpoints.c.id == endpoint_id).values(cursor=document))


# Advisory-lock namespace of REST source endpoints (the second key is the endpoint id).
POLL_LOCK_CLASS = 7342


class RestPoller:
    """Polls every due REST source endpoint; one task for all of them, errors contained per
    endpoint (see the module doc).

    Every worker runs one, but an endpoint is polled by one worker only: the first to take
    its PostgreSQL advisory lock (held by a connection kept for the worker's life, so a dead
    worker's endpoints go to the next one that asks).
    """

    def __init__(
        self, settings: Settings, engine: sqlalchemy.Engine, producer: AsyncProducer
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.producer = producer
        self._due: dict[int, float] = {}
        self._failures: dict[int, int] = {}  # endpoint id → polls failed in a row
        self._misconfigured = MisconfiguredSources("rest")
        self._lock_conn: sqlalchemy.Connection | None = None
        self._claimed: set[int] = set()
        self._stopping = asyncio.Event()

    def _claim(self, endpoint_id: int) -> bool:
        """Whether this worker polls ``endpoint_id`` (taking its advisory lock if free)."""
        try:
            if self._lock_conn is None:
                self._lock_conn = self.engine.connect()
                self._claimed.clear()
            conn = self._lock_conn
            if endpoint_id in self._claimed:
                conn.execute(sqlalchemy.text("SELECT 1"))  # the claims live with the connection
                conn.commit()
                return True
            taken = conn.execute(
                sqlalchemy.text("SELECT pg_try_advisory_lock(:kind, :id)"),
                {"kind": POLL_LOCK_CLASS, "id": endpoint_id},
            ).scalar_one()
            conn.commit()
        except sqlalchemy.exc.SQLAlchemyError:
            log.warning("poll lock connection lost; claims dropped", exc_info=True)
            self._release_claims()
            return False
        if taken:
            self._claimed.add(endpoint_id)
        return bool(taken)

    def _release_claims(self) -> None:
        if self._lock_conn is not None:
            # Invalidate, not close: a closed Connection goes back to the pool with its session,
            # and session-level advisory locks would stay taken by nobody in particular.
            try:
                self._lock_conn.invalidate()
                self._lock_conn.close()
            except sqlalchemy.exc.SQLAlchemyError:
                pass
        self._lock_conn = None
        self._claimed.clear()

    async def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        try:
            await self._poll_forever()
        finally:
            await asyncio.to_thread(self._release_claims)

    async def _poll_forever(self) -> None:
        listed: list[PolledEndpoint] = []
        listed_at = -REFRESH_S
        while not self._stopping.is_set():
            now = time.monotonic()
            if now - listed_at >= REFRESH_S:
                listed = await self._list(listed)
                listed_at = now
            for source in listed:
                if self._stopping.is_set():
                    break
                if self._due.get(source.endpoint_id, 0.0) > now:
                    continue
                if await self._poll_contained(source):
                    listed_at = -REFRESH_S  # re-read: the cursor moved
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=0.5)
            except TimeoutError:
                pass

    async def _list(self, known: list[PolledEndpoint]) -> list[PolledEndpoint]:
        try:
            listed, invalid = await asyncio.to_thread(polled_endpoints, self.engine)
        except SynapseOpsError as exc:
            log.warning(
                "polled endpoints not read; keeping the last list", extra={"error": str(exc)}
            )
            return known
        self._misconfigured.report(invalid)
        return listed

    async def _poll_contained(self, source: PolledEndpoint) -> bool:
        """Poll one endpoint if this worker holds it; whether it polled. Any failure is this
        endpoint's alone: logged, counted, and retried after its backoff."""
        now = time.monotonic()
        self._due[source.endpoint_id] = now + source.interval_s
        try:
            if not await asyncio.to_thread(self._claim, source.endpoint_id):
                return False  # another worker polls this endpoint
            await self.poll_once(source)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures = self._failures.get(source.endpoint_id, 0) + 1
            self._failures[source.endpoint_id] = failures
            delay = min(source.interval_s * 2 ** min(failures, 16), MAX_BACKOFF_S)
            self._due[source.endpoint_id] = now + max(delay, source.interval_s)
            SOURCE_FAILURES.labels("rest", "poll_failed").inc()
            log.warning(
                "poll failed; this endpoint tries again after its backoff",
                extra={
                    **source.where,
                    "failures": failures,
                    "retry_in_s": delay,
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )
            return False
        self._failures.pop(source.endpoint_id, None)
        return True

    async def poll_once(self, source: PolledEndpoint) -> int:
        """Fetch one page after the cursor, publish its items, save the cursor; items sent."""
        config = source.config
        params: dict[str, Any] = dict(config.params)
        cursor = source.cursor if source.cursor is not None else config.initial_cursor
        if cursor is not None:
            params[config.cursor_param] = cursor
        headers: dict[str, str] = {}
        if source.credential_id is not None:
            credential = await asyncio.to_thread(
                load_credential, self.engine, self.settings, source.credential_id
            )
            headers = auth_headers(credential)
        target = HttpTarget.for_connector(source.connector, source.base_url, self.settings)
        try:
            query = urlencode({k: str(v) for k, v in params.items()})
            path = f"{source.path}?{query}" if query else source.path
            response = await target.request("GET", path, headers=headers)
        finally:
            await target.aclose()
        items, next_cursor = read_page(load_payload(response.body), config, cursor)
        received_at = kh.received_at_now()
        for item in items:
            await self.producer.send(
                INTEGRATION_EVENTS.name,
                item.body,
                key=item.entity_key.encode(),
                headers=kh.ingress_headers(
                    event_id=item.event_id,
                    source=source.connector,
                    received_at=received_at,
                    traceparent=new_traceparent(),
                    connector=source.connector,
                    endpoint=source.endpoint,
                ),
            )
        if next_cursor != cursor:
            await asyncio.to_thread(save_cursor, self.engine, source.endpoint_id, next_cursor)
        log.info("polled", extra={**source.where, "items": len(items)})
        return len(items)
