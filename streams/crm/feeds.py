"""Change capture: both CRMs' change feeds as one family of the shared poller.

Each sync state (a mapping's side) is a polled source: its feed is read after the stored
cursor (Salesforce CDC ``replayId``; HubSpot's event id), the integration's own changes are
dropped (the first layer of echo suppression: ``changeOrigin`` with our client id, HubSpot's
``changeSource: INTEGRATION`` from our app), and each remaining change becomes a CrmEvent on
``crm.changes``, keyed by its link (:func:`streams.crm.events.link_key`). The poller publishes
a page, then advances the cursor: a crash in between publishes the page again, which the
sync absorbs (the watermark and the diff against both sides write nothing twice). A change
is never skipped at a page boundary: the next page starts after the last event the feed
answered, whatever it was.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import sqlalchemy

from sinks.crm import store
from sinks.crm.links import load_links
from streams.crm import metrics
from streams.crm.events import CrmChange, hubspot_changes, link_key, salesforce_changes
from streams.crm.model import CrmMappingSpec, Side
from streams.polling import Page, PolledRecord, Poller
from synapseops import headers as kh
from synapseops.ids import new_traceparent
from synapseops.kafka import AsyncProducer
from synapseops.settings import Settings
from topics.registry import CRM_CHANGE, CRM_CHANGES

# Advisory-lock namespace of CRM feeds (the second key is the sync state's id).
FEED_LOCK_CLASS = 7343


@dataclass(frozen=True)
class Feed:
    state_id: int
    mapping_id: int
    mapping: str
    side: Side
    object_type: str
    platform_id: int
    interval_s: float
    cursor: Any

    @property
    def key(self) -> int:
        return self.state_id

    @property
    def where(self) -> dict[str, str]:
        return {"mapping": self.mapping, "side": self.side}


class CrmFeeds:
    """The sync states of enabled mappings as polled sources (:class:`PolledSources`)."""

    kind = "crm"
    lock_class = FEED_LOCK_CLASS

    def __init__(self, settings: Settings, engine: sqlalchemy.Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.clients = store.PlatformClients(settings, engine)
        self._counts: dict[int, tuple[int, int]] = {}  # state → (read, own) of the last page

    def listing(self) -> tuple[list[Feed], dict[str, list[str]]]:
        feeds: list[Feed] = []
        invalid: dict[str, list[str]] = {}
        for row in store.feed_states(self.engine):
            try:
                spec = CrmMappingSpec.model_validate(dict(row["spec"]))
            except ValueError as exc:
                invalid[str(row["mapping"])] = [str(exc)]
                continue
            side: Side = row["side"]
            feeds.append(
                Feed(
                    state_id=int(row["id"]),
                    mapping_id=int(row["mapping_id"]),
                    mapping=str(row["mapping"]),
                    side=side,
                    object_type=spec.salesforce_object
                    if side == "salesforce"
                    else spec.hubspot_object,
                    platform_id=int(row[f"{side}_platform_id"]),
                    interval_s=float(row["poll_interval_s"]),
                    cursor=row["cursor"],
                )
            )
        return feeds, invalid

    async def fetch(self, source: Feed) -> Page:
        client = await self.clients.get(source.platform_id)
        page = await client.feed(source.object_type, source.cursor)
        own_origin = client.access.own_origin
        if source.side == "salesforce":
            changes, own = salesforce_changes(
                source.mapping_id, source.object_type, page.events, own_origin, None
            )
        else:
            changes, own = hubspot_changes(
                source.mapping_id, source.object_type, page.events, own_origin
            )
        self._counts[source.state_id] = (len(changes), own)
        keys = await asyncio.to_thread(self._keys, source, changes)
        received_at = kh.received_at_now()
        records = [
            PolledRecord(
                topic=CRM_CHANGES.name,
                key=key,
                value=change.encode(),
                headers=[
                    *kh.ingress_headers(
                        event_id=change.event_id,
                        source=f"crm:{source.side}",
                        received_at=received_at,
                        traceparent=new_traceparent(),
                    ),
                    (kh.MESSAGE_KIND, CRM_CHANGE.encode()),
                ],
            )
            for change, key in zip(changes, keys, strict=True)
        ]
        way = metrics.direction(source.side)
        metrics.CHANGES.labels(str(source.mapping_id), way, "read").inc(len(changes))
        metrics.CHANGES.labels(str(source.mapping_id), way, "own").inc(own)
        return Page(records, page.cursor)

    def _keys(self, source: Feed, changes: list[CrmChange]) -> list[bytes]:
        ids = [c.id for c in changes]
        links = load_links(
            self.engine,
            source.mapping_id,
            ids if source.side == "salesforce" else [],
            ids if source.side == "hubspot" else [],
        )
        linked = {
            link.state.ids.get(source.side): link.state.ids.get("salesforce") for link in links
        }
        return [link_key(source.mapping_id, linked.get(c.id), source.side, c.id) for c in changes]

    def advance(self, source: Feed, cursor: Any) -> None:
        read, own = self._counts.pop(source.state_id, (0, 0))
        store.save_cursor(self.engine, source.state_id, str(cursor), read, own)

    async def aclose(self) -> None:
        await self.clients.aclose()


class CrmPoller(Poller[Feed]):
    """The shared poller over the CRM feeds; every worker runs one (``pipeline.py``)."""

    def __init__(
        self, settings: Settings, engine: sqlalchemy.Engine, producer: AsyncProducer
    ) -> None:
        self.feeds = CrmFeeds(settings, engine)
        super().__init__(self.feeds, engine, producer)

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await self.feeds.aclose()
