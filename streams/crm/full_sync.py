"""Manual full sync of a mapping: a dry-run diff, or a reconcile of every drifted pair.

A worker's :class:`FullSyncRunner` claims a queued full sync (:mod:`sinks.crm.full_syncs`),
reads every live record of both sides a page at a time, pairs them (by link, else by the
match key) and plans each pair with the same :func:`~streams.crm.reconcile.decide` the
incremental sync uses: would create / update / hold a conflict / skip (with the reason),
counted in ``planned`` with a few ``samples`` of each. A dry run stops there. A run links the
pairs that already agree (matched by key, never linked: no write needed) and hands each
pair that needs work to the pipeline as a CrmEvent (``seq`` -1, ``full_sync`` = the run's id)
on ``crm.changes``, keyed by its link — behind any incremental change of the same pair, so the
two never race on a record, and the pipeline reads both sides again before it writes: a pair
the incremental sync fixed meanwhile is skipped, never written twice. The pipeline counts the
run's ``done``; the run is done when every event was handled.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy

from sinks.crm import full_syncs, store
from sinks.crm.links import Counts, LinkRow, PairOutcome, load_links, record_batch
from streams.crm.events import CrmChange, link_key
from streams.crm.model import SIDES, CompiledCrmMapping, Side, match_value
from streams.crm.reconcile import Plan, Snapshot, decide
from synapseops import headers as kh
from synapseops.errors import SynapseOpsError
from synapseops.ids import new_traceparent
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import CRM_CHANGE, CRM_CHANGES

log = get_logger(__name__)
SAMPLES_PER_KIND = 5
IDLE_S = 1.0


@dataclass
class Planned:
    pairs: list[tuple[dict[Side, Snapshot | None], Plan]] = field(default_factory=list)
    # pairs that agree but have no link yet: a run links them (no write), so their later
    # changes and deletes are known for what they are
    to_link: list[PairOutcome] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, now: dict[Side, Snapshot | None], plan: Plan | None, failure: str = "") -> None:
        kind = _kind(plan) if plan is not None else "fail"
        self.counts[kind] += 1
        if plan is not None and plan.acts | bool(plan.conflicts):
            self.pairs.append((now, plan))
        shown = self.samples.setdefault(kind, [])
        if len(shown) < SAMPLES_PER_KIND:
            sample: dict[str, Any] = {}
            for side in SIDES:
                record = now.get(side)
                sample[side] = record.id if record is not None else None
            if plan is not None:
                sample["writes"] = plan.writes
                sample["reason"] = plan.skip
            else:
                sample["reason"] = failure
            shown.append(sample)


def _kind(plan: Plan) -> str:
    if plan.creates:
        return "create"
    if plan.writes or plan.deletes:
        return "update"
    if plan.conflicts:
        return "conflict"
    return "skip"


def pair_up(
    mapping: CompiledCrmMapping,
    records: dict[Side, dict[str, Snapshot]],
    links: list[LinkRow],
) -> list[tuple[LinkRow | None, dict[Side, Snapshot | None]]]:
    """Every record of both sides in pairs: by link, else by the match key, else alone."""
    by_id = {
        (side, link.state.ids.get(side)): link
        for link in links
        for side in SIDES
        if link.state.ids.get(side)
    }
    taken: set[tuple[Side, str]] = set()
    pairs: list[tuple[LinkRow | None, dict[Side, Snapshot | None]]] = []
    unlinked_hs: dict[str, Snapshot] = {}
    for record in records["hubspot"].values():
        value = match_value(record.fields.get(mapping.match_field("hubspot")))
        if ("hubspot", record.id) not in by_id and value is not None:
            unlinked_hs.setdefault(value, record)
    for record in records["salesforce"].values():
        link = by_id.get(("salesforce", record.id))
        other: Snapshot | None = None
        if link is not None:
            hs_id = link.state.ids.get("hubspot")
            other = records["hubspot"].get(hs_id) if hs_id else None
        else:
            value = match_value(record.fields.get(mapping.match_field("salesforce")))
            other = unlinked_hs.pop(value, None) if value is not None else None
        if other is not None:
            taken.add(("hubspot", other.id))
        pairs.append((link, {"salesforce": record, "hubspot": other}))
    for record in records["hubspot"].values():
        if ("hubspot", record.id) in taken:
            continue
        link = by_id.get(("hubspot", record.id))
        pairs.append((link, {"salesforce": None, "hubspot": record}))
    return pairs


class FullSyncRunner:
    """Runs queued full syncs one at a time (a supervised task of every worker)."""

    def __init__(
        self, settings: Settings, engine: sqlalchemy.Engine, producer: AsyncProducer
    ) -> None:
        self.engine = engine
        self.producer = producer
        self.lease_s = settings.crm.full_sync_lease_s
        self.clients = store.PlatformClients(settings, engine)
        self._stopping = asyncio.Event()

    async def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                row = await asyncio.to_thread(full_syncs.claim_next, self.engine, self.lease_s)
                if row is None:
                    try:
                        await asyncio.wait_for(self._stopping.wait(), IDLE_S)
                    except TimeoutError:
                        pass
                    continue
                await self._contained(row)
        finally:
            await self.clients.aclose()

    async def _contained(self, row: dict[str, Any]) -> None:
        try:
            await self.run_one(row)
        except SynapseOpsError as exc:
            log.warning("full sync failed", extra={"full_sync": row["id"], "error": str(exc)})
            await asyncio.to_thread(
                full_syncs.save, self.engine, int(row["id"]), status="failed", error=str(exc)
            )

    async def run_one(self, row: dict[str, Any]) -> None:
        sync_id = int(row["id"])
        mapping_row = await asyncio.to_thread(
            store.get_mapping, self.engine, int(row["mapping_id"])
        )
        mapping = store.compiled(mapping_row)
        records: dict[Side, dict[str, Snapshot]] = {"salesforce": {}, "hubspot": {}}
        for side in SIDES:
            client = await self.clients.get(int(mapping_row[f"{side}_platform_id"]))
            kind = (
                mapping.spec.salesforce_object
                if side == "salesforce"
                else mapping.spec.hubspot_object
            )
            fields = [*mapping.fields_of(side), mapping.match_field(side)]
            async for page in client.pages(kind, fields):
                records[side].update((r.id, r) for r in page)
                if await self._stopped(row):
                    return
        links = await asyncio.to_thread(
            load_links, self.engine, mapping.id, records["salesforce"], records["hubspot"]
        )
        planned = Planned()
        for link, now in pair_up(mapping, records, links):
            try:
                plan = decide(mapping, link.state if link else None, now, [])
            except SynapseOpsError as exc:  # a record that breaks the rules: counted, shown
                planned.add(now, None, str(exc))
                continue
            planned.add(now, plan)
            sf, hs = now.get("salesforce"), now.get("hubspot")
            if link is None and sf is not None and hs is not None and not plan.acts:
                ids: dict[Side, str | None] = {"salesforce": sf.id, "hubspot": hs.id}
                value = match_value(sf.fields.get(mapping.match_field("salesforce")))
                planned.to_link.append(PairOutcome(None, ids, value, plan, {}))
        if not row["dry_run"] and planned.to_link:
            await asyncio.to_thread(
                record_batch, self.engine, mapping.id, planned.to_link, Counts()
            )
        total = 0 if row["dry_run"] else len(planned.pairs)
        await asyncio.to_thread(
            full_syncs.save,
            self.engine,
            sync_id,
            planned=dict(planned.counts),
            samples=planned.samples,
            total=total,
            **({"status": "done"} if total == 0 else {}),
        )
        if total and await self._hand_over(mapping, row, planned, links):
            # every pair is the pipeline's now (on Kafka): no runner needs to hold this one
            await asyncio.to_thread(full_syncs.renew, self.engine, row, None)

    async def _hand_over(
        self,
        mapping: CompiledCrmMapping,
        row: dict[str, Any],
        planned: Planned,
        links: list[LinkRow],
    ) -> bool:
        """Each pair to the pipeline; False when stopped first (cancelled, or taken over)."""
        sync_id = int(row["id"])
        for number, (now, _) in enumerate(planned.pairs):
            if number % 200 == 0 and await self._stopped(row):
                return False
            sf, hs = now.get("salesforce"), now.get("hubspot")
            side: Side = "salesforce" if sf is not None else "hubspot"
            record = sf if sf is not None else hs
            assert record is not None
            linked_sf = sf.id if sf is not None else _linked_sf(links, record.id)
            kind = (
                mapping.spec.salesforce_object
                if side == "salesforce"
                else mapping.spec.hubspot_object
            )
            change = CrmChange(mapping.id, side, kind, record.id, "upsert", -1, "", sync_id)
            await self.producer.send(
                CRM_CHANGES.name,
                change.encode(),
                key=link_key(mapping.id, linked_sf, side, record.id),
                headers=[
                    *kh.ingress_headers(
                        event_id=f"{change.event_id}:{sync_id}",
                        source="crm:full-sync",
                        traceparent=new_traceparent(),
                    ),
                    (kh.MESSAGE_KIND, CRM_CHANGE.encode()),
                ],
            )
        return True

    async def _stopped(self, row: dict[str, Any]) -> bool:
        """Renew the lease; whether to stop: a person cancelled the run (it is ``cancelled``
        now), or the lease is no longer ours (it ran out: another runner took the run over)."""
        now = await asyncio.to_thread(full_syncs.renew, self.engine, row, self.lease_s)
        if now is None:
            log.warning("full sync lease lost: another runner has it", extra={"id": row["id"]})
            return True
        if now["cancel_requested"]:
            await asyncio.to_thread(full_syncs.save, self.engine, now["id"], status="cancelled")
            return True
        return False


def _linked_sf(links: list[LinkRow], hubspot_id: str) -> str | None:
    for link in links:
        if link.state.ids.get("hubspot") == hubspot_id:
            return link.state.ids.get("salesforce")
    return None
