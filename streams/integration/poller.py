"""Polled REST sources: every ``poll_interval_s``, fetch what changed since the cursor and
publish each item to ``integration.events``; then, and only then, save the new cursor. The
schedule, the claim, the order "publish, then advance" and the containment of failures are
the shared poller's (``streams/polling.py``); this module says what a REST source is, how a
page of it is fetched and read, and where its cursor is kept.

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
check the API runs on write; an endpoint that fails it is skipped and logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import sqlalchemy

from sinks.http import HttpTarget
from sinks.integration.credentials import auth_headers
from sinks.integration.sources import enabled_source_endpoints, save_cursor
from sinks.integration.store import load_credential
from streams.integration.source_config import (
    PollConfig,
    ReservedTopics,
    source_endpoint_problems,
)
from streams.mapping import dump_output, load_payload, resolve
from streams.polling import Page, PolledRecord, Poller
from synapseops import headers as kh
from synapseops.ids import new_traceparent
from synapseops.kafka import AsyncProducer
from synapseops.settings import Settings
from topics.registry import INTEGRATION_EVENTS

# Advisory-lock namespace of REST source endpoints (the second key is the endpoint id).
POLL_LOCK_CLASS = 7342


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
    def key(self) -> int:
        return self.endpoint_id

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
    found: list[PolledEndpoint] = []
    invalid: dict[str, list[str]] = {}
    for row in enabled_source_endpoints(engine, "rest"):
        if row["poll_interval_s"] is None:
            continue  # a webhook source: nothing to poll
        problems = source_endpoint_problems("rest", row, _NO_TOPICS)
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


class RestSources:
    """The REST source endpoints as a family of polled sources (:class:`PolledSources`)."""

    kind = "rest"
    lock_class = POLL_LOCK_CLASS

    def __init__(self, settings: Settings, engine: sqlalchemy.Engine) -> None:
        self.settings = settings
        self.engine = engine

    def listing(self) -> tuple[list[PolledEndpoint], dict[str, list[str]]]:
        return polled_endpoints(self.engine)

    async def fetch(self, source: PolledEndpoint) -> Page:
        """GET one page after the cursor (with the endpoint's credential) and read it."""
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
        records = [
            PolledRecord(
                topic=INTEGRATION_EVENTS.name,
                key=item.entity_key.encode(),
                value=item.body,
                headers=kh.ingress_headers(
                    event_id=item.event_id,
                    source=source.connector,
                    received_at=received_at,
                    traceparent=new_traceparent(),
                    connector=source.connector,
                    endpoint=source.endpoint,
                ),
            )
            for item in items
        ]
        return Page(records, next_cursor)

    def advance(self, source: PolledEndpoint, cursor: Any) -> None:
        save_cursor(self.engine, source.endpoint_id, cursor)


class RestPoller(Poller[PolledEndpoint]):
    """The shared poller over the REST sources; every worker runs one (``pipeline.py``)."""

    def __init__(
        self, settings: Settings, engine: sqlalchemy.Engine, producer: AsyncProducer
    ) -> None:
        super().__init__(RestSources(settings, engine), engine, producer)
