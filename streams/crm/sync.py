"""The ``crm-sync`` pipeline's work: a batch of change events reconciled, both sides at once.

For one batch (one partition's records, in order), per mapping:

1. the links of the changed records in one query; the changes grouped into pairs (a link, or
   a record not linked yet), so two changes of one record are handled once;
2. both sides read as they are now, in batch reads; a record not linked yet is looked for on
   the other side by the match key (and two unlinked changes that match become one pair);
3. each pair's plan (:func:`streams.crm.reconcile.decide`: policies, hash, watermark);
4. the writes, in the platforms' batch calls (:mod:`streams.crm.writes`);
5. one transaction: links, conflicts, counts (:func:`sinks.crm.links.record_batch`); then a
   ``sync_conflict`` trigger per newly held field.

One answer per record: ``done`` / ``skipped`` with the reason, or the error its pair failed
with (a platform's refusal of that record alone is fatal: its dead letter says why).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy

from sinks.crm import store
from sinks.crm.client import CrmClient
from sinks.crm.links import Counts, LinkRow, NewConflict, PairOutcome, load_links, record_batch
from sinks.crm.locks import PairLocks
from streams.crm import metrics
from streams.crm.answers import conflict_trigger, full_syncs_of, outcome_of
from streams.crm.events import CrmChange, decode_change
from streams.crm.model import SIDES, CompiledCrmMapping, Side, match_value, other
from streams.crm.reconcile import Trigger, decide
from streams.crm.writes import Pair, write_all
from streams.road import Outcome, RoadRecord
from streams.triggers import TriggerPublisher
from synapseops import headers as kh
from synapseops.errors import RecordBusy, RecordNotFound, SynapseOpsError
from synapseops.settings import Settings

Answer = Outcome | BaseException


class CrmSync:
    def __init__(
        self, settings: Settings, engine: sqlalchemy.Engine, triggers: TriggerPublisher | None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.triggers = triggers
        self.clients = store.PlatformClients(settings, engine)

    async def aclose(self) -> None:
        await self.clients.aclose()

    async def handle(self, records: Sequence[RoadRecord]) -> list[Answer]:
        answers: list[Answer | None] = [None] * len(records)
        by_mapping: dict[int, list[tuple[int, CrmChange]]] = {}
        for index, record in enumerate(records):
            try:
                change = decode_change(record.value)
            except SynapseOpsError as exc:
                answers[index] = exc
                continue
            by_mapping.setdefault(change.mapping_id, []).append((index, change))
        for mapping_id, items in by_mapping.items():
            try:
                await self._mapping_batch(mapping_id, items, records, answers)
            except RecordNotFound as exc:  # the mapping was deleted with events in flight
                for index, _ in items:
                    answers[index] = Outcome("skipped", str(exc))
            except SynapseOpsError as exc:  # the mapping's batch as a whole (database down…)
                for index, _ in items:
                    answers[index] = exc
        return [a if a is not None else Outcome("skipped", "no answer") for a in answers]

    async def load(self, mapping_id: int) -> tuple[CompiledCrmMapping, dict[Side, CrmClient]]:
        row = await asyncio.to_thread(store.get_mapping, self.engine, mapping_id)
        clients: dict[Side, CrmClient] = {
            "salesforce": await self.clients.get(int(row["salesforce_platform_id"])),
            "hubspot": await self.clients.get(int(row["hubspot_platform_id"])),
        }
        return store.compiled(row), clients

    @asynccontextmanager
    async def locked(self, mapping_id: int) -> AsyncIterator[PairLocks]:
        """A batch's connection and the locks of the records it syncs (:mod:`sinks.crm.locks`),
        released when the batch's transaction commits or, at the latest, when it ends."""
        locks = await asyncio.to_thread(PairLocks, self.engine, mapping_id)
        try:
            yield locks
        finally:
            await asyncio.to_thread(locks.close)

    async def _mapping_batch(
        self,
        mapping_id: int,
        items: list[tuple[int, CrmChange]],
        records: Sequence[RoadRecord],
        answers: list[Answer | None],
    ) -> None:
        mapping, clients = await self.load(mapping_id)
        changes = [change for _, change in items]
        sf_ids = [c.id for c in changes if c.side == "salesforce"]
        hs_ids = [c.id for c in changes if c.side == "hubspot"]
        async with self.locked(mapping_id) as locks:
            # the records known up front: the changes' own and their links' other side
            known = await asyncio.to_thread(load_links, locks.conn, mapping_id, sf_ids, hs_ids)
            await asyncio.to_thread(
                locks.acquire,
                [(c.side, c.id) for c in changes]
                + [(s, i) for link in known for s in SIDES if (i := link.state.ids.get(s))],
            )
            # read again under the locks: a handler that held them may have linked a record
            links = await asyncio.to_thread(load_links, locks.conn, mapping_id, sf_ids, hs_ids)
            pairs = group(items, links)
            pairs = await self.reconcile(mapping, clients, pairs, locks)
            await self.finish(mapping, pairs, records, answers, locks)

    async def reconcile(
        self,
        mapping: CompiledCrmMapping,
        clients: dict[Side, CrmClient],
        pairs: list[Pair],
        locks: PairLocks,
        resolutions: dict[str, Side] | None = None,
    ) -> list[Pair]:
        """Read, match, decide and write every pair (failures land on the pairs). A pair
        whose records another handler holds is not read: it fails with
        :class:`~synapseops.errors.RecordBusy` (see :mod:`sinks.crm.locks`)."""
        await asyncio.to_thread(_take, locks, pairs)
        busy = [p for p in pairs if p.failure is not None]
        live = [p for p in pairs if p.failure is None]
        try:
            await read_both(mapping, clients, live)
            live = await self._match(mapping, clients, live, locks)
        except SynapseOpsError as exc:
            for pair in live:
                pair.fail(exc)
            return [*live, *busy]
        await asyncio.to_thread(_take, locks, live)  # the records found by their match key
        for pair in live:
            if pair.failure is not None:
                continue
            try:
                pair.plan = decide(
                    mapping,
                    pair.link.state if pair.link else None,
                    pair.now,
                    pair.triggers,
                    resolutions,
                )
            except SynapseOpsError as exc:  # a record that breaks the mapping's rules
                pair.fail(exc)
        await write_all(mapping, live, clients)
        return [*live, *busy]

    async def _match(
        self,
        mapping: CompiledCrmMapping,
        clients: dict[Side, CrmClient],
        pairs: list[Pair],
        locks: PairLocks,
    ) -> list[Pair]:
        wanted: dict[Side, dict[str, Pair]] = {"salesforce": {}, "hubspot": {}}
        for pair in pairs:
            if pair.link is not None:
                continue
            for side in SIDES:
                record = pair.now.get(side)
                if record is not None and pair.ids.get(other(side)) is None:
                    value = match_value(record.fields.get(mapping.match_field(side)))
                    pair.match_value = value
                    if value is not None:
                        wanted[other(side)].setdefault(value, pair)
        for side in SIDES:
            if not wanted[side]:
                continue
            found = await clients[side].find(
                _object(mapping, side),
                mapping.match_field(side),
                sorted(wanted[side]),
                mapping.fields_of(side),
            )
            for value, snapshot in found.items():
                pair = wanted[side][value]
                pair.ids[side], pair.now[side] = snapshot.id, snapshot
        return await asyncio.to_thread(self._merge, mapping, pairs, locks.conn)

    def _merge(
        self, mapping: CompiledCrmMapping, pairs: list[Pair], conn: sqlalchemy.Connection
    ) -> list[Pair]:
        """Pairs that now name the same records become one; a match already linked elsewhere
        is adopted (that link knows the pair)."""
        merged: dict[tuple[str | None, str | None], Pair] = {}
        for pair in pairs:
            key = (pair.ids.get("salesforce"), pair.ids.get("hubspot"))
            if key in merged:
                kept = merged[key]
                kept.indexes += pair.indexes
                kept.triggers += pair.triggers
                kept.link = kept.link or pair.link
            else:
                merged[key] = pair
        unlinked = [p for p in merged.values() if p.link is None]
        if unlinked:
            found = load_links(
                conn,
                mapping.id,
                [i for p in unlinked if (i := p.ids.get("salesforce"))],
                [i for p in unlinked if (i := p.ids.get("hubspot"))],
            )
            for pair in unlinked:
                for link in found:
                    if any(
                        pair.ids.get(s) and link.state.ids.get(s) == pair.ids.get(s) for s in SIDES
                    ):
                        pair.link = link
        return list(merged.values())

    async def finish(
        self,
        mapping: CompiledCrmMapping,
        pairs: list[Pair],
        records: Sequence[RoadRecord],
        answers: list[Answer | None],
        locks: PairLocks,
    ) -> None:
        """Save the batch (links, conflicts, counts) and commit it, releasing its locks; then
        the metrics, the conflicts' triggers and each record's answer."""
        counts, outcomes = Counts(), []
        for pair in pairs:
            side = pair.triggers[0].side if pair.triggers else "salesforce"
            if pair.failure is not None or pair.plan is None:
                counts.failed[side] += len(pair.indexes)
                continue
            watermarks = {
                s: max((t.seq for t in pair.triggers if t.side == s), default=-1) for s in SIDES
            }
            outcomes.append(
                PairOutcome(
                    pair.link.id if pair.link else None,
                    pair.ids,
                    pair.match_value,
                    pair.plan,
                    watermarks,
                )
            )
            if pair.plan.skip is not None:
                counts.skip(side, pair.plan.skip)
            for target in pair.plan.writes.keys() | pair.plan.deletes:
                counts.written[other(target)] += 1
        handled = full_syncs_of(pairs, records)
        opened = await asyncio.to_thread(
            record_batch, locks.conn, mapping.id, outcomes, counts, handled
        )
        await asyncio.to_thread(locks.commit)
        metrics.observe(mapping.id, pairs, opened)
        for conflict in opened:
            await self._publish(mapping, conflict, records[pairs[0].indexes[0]])
        for pair in pairs:
            answer = pair.failure if pair.failure is not None else outcome_of(pair)
            for index in pair.indexes:
                answers[index] = answer

    async def _publish(
        self, mapping: CompiledCrmMapping, opened: NewConflict, cause: RoadRecord
    ) -> None:
        if self.triggers is None:
            return
        traceparent = (cause.header(kh.TRACEPARENT) or b"").decode() or None
        trigger = conflict_trigger(mapping, opened, traceparent)
        await self.triggers.publish(
            trigger, key=f"crm-conflict:{opened.id}".encode(), traceparent=traceparent
        )


def _take(locks: PairLocks, pairs: list[Pair]) -> None:
    """Each pair's records this batch's, or the pair fails as busy (never waited for)."""
    for pair in pairs:
        records = [(s, i) for s in SIDES if (i := pair.ids.get(s))]
        if pair.failure is None and not locks.take(records):
            pair.fail(RecordBusy(f"another handler is syncing {records} right now"))


def _object(mapping: CompiledCrmMapping, side: Side) -> str:
    spec = mapping.spec
    return spec.salesforce_object if side == "salesforce" else spec.hubspot_object


def _ms(text: str) -> int:
    return int(text) if text.isdigit() else 0


def group(items: list[tuple[int, CrmChange]], links: list[LinkRow]) -> list[Pair]:
    """The batch's changes as pairs: by link when linked, else by the record itself."""
    by_id: dict[tuple[Side, str], LinkRow] = {}
    for row in links:
        for side in SIDES:
            record_id = row.state.ids.get(side)
            if record_id:
                by_id[(side, record_id)] = row
    pairs: dict[Any, Pair] = {}
    for index, change in items:
        found = by_id.get((change.side, change.id))
        link = found
        key: Any = ("link", link.id) if link else (change.side, change.id)
        trigger = Trigger(change.side, change.op, change.seq, _ms(change.at))
        if key in pairs:
            pairs[key].indexes.append(index)
            pairs[key].triggers.append(trigger)
            continue
        ids: dict[Side, str | None] = (
            dict(link.state.ids) if link else {change.side: change.id, other(change.side): None}
        )
        pairs[key] = Pair([index], [trigger], link, ids)
    return list(pairs.values())


async def read_both(
    mapping: CompiledCrmMapping, clients: dict[Side, CrmClient], pairs: list[Pair]
) -> None:
    """Both sides of every pair as they are now (absent: deleted or unknown)."""

    async def one(side: Side) -> None:
        ids = [p.ids[side] for p in pairs if p.ids.get(side)]
        found = (
            await clients[side].read(
                _object(mapping, side),
                [i for i in ids if i],
                [*mapping.fields_of(side), mapping.match_field(side)],
            )
            if ids
            else {}
        )
        for pair in pairs:
            record_id = pair.ids.get(side)
            pair.now[side] = found.get(record_id) if record_id else None

    await asyncio.gather(one("salesforce"), one("hubspot"))
