"""The CRM Automation service on the road: ``crm-sync`` over ``crm.changes``.

Change events (``crm.change``) have a batch handler (:class:`~streams.crm.sync.CrmSync`: a
partition's batch reconciled with the platforms' batch reads and writes); the per-record
handler is that batch handler on a batch of one — one code path. A resolve command
(``crm.resolve-command``, published by the API when a person picks a side for a held field)
writes the chosen value where it is missing and closes the conflict. ``tasks(runtime)`` gives
the change-feed poller (:mod:`streams.crm.feeds`) and the full-sync runner
(:mod:`streams.crm.full_sync`), supervised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mode import Service

from sinks.crm.links import conflict_with_link
from streams.crm.events import decode_resolve
from streams.crm.model import Side
from streams.crm.sync import Answer, CrmSync
from streams.crm.writes import Pair
from streams.road import Outcome, Pipeline, RoadRecord
from streams.road.pipeline import BatchHandler, Handler
from streams.supervision import TaskSpec
from streams.triggers import TriggerPublisher
from topics.registry import CRM_CHANGE, CRM_RESOLVE, CRM_SYNC

if TYPE_CHECKING:
    from streams.bootstrap import Runtime


class CrmHandlers:
    def __init__(self, sync: CrmSync) -> None:
        self.sync = sync

    @property
    def handlers(self) -> dict[str, Handler]:
        return {CRM_CHANGE: self.change, CRM_RESOLVE: self.resolve}

    @property
    def batch_handlers(self) -> dict[str, BatchHandler]:
        return {CRM_CHANGE: self.changes}

    async def changes(self, records: Sequence[RoadRecord]) -> list[Answer]:
        return await self.sync.handle(records)

    async def change(self, record: RoadRecord) -> Outcome:
        (answer,) = await self.sync.handle([record])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def resolve(self, record: RoadRecord) -> Outcome:
        command = decode_resolve(record.value)
        found = await asyncio.to_thread(conflict_with_link, self.sync.engine, command.conflict_id)
        if found is None:
            return Outcome("skipped", f"no conflict {command.conflict_id}")
        conflict, link = found
        if conflict["status"] != "open":
            return Outcome("skipped", f"conflict {command.conflict_id} is already resolved")
        mapping, clients = await self.sync.load(int(conflict["mapping_id"]))
        pair = Pair([0], [], link, dict(link.state.ids))
        resolutions: dict[str, Side] = {str(conflict["field"]): command.choice}
        answers: list[Answer | None] = [None]
        async with self.sync.locked(mapping.id) as locks:
            ids = [(s, i) for s, i in link.state.ids.items() if i]
            await asyncio.to_thread(locks.acquire, ids)
            pairs = await self.sync.reconcile(mapping, clients, [pair], locks, resolutions)
            await self.sync.finish(mapping, pairs, [record], answers, locks)
        (answer,) = answers
        if isinstance(answer, BaseException):
            raise answer
        assert answer is not None
        return answer


class CrmClients(Service):
    """Closes the sync's platform clients when the worker stops."""

    def __init__(self, sync: CrmSync, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sync = sync

    async def on_stop(self) -> None:
        await self.sync.aclose()


_syncs: dict[int, CrmSync] = {}


def sync_for(runtime: Runtime) -> CrmSync:
    found = _syncs.get(id(runtime))
    if found is None:
        triggers = TriggerPublisher(runtime.producer, runtime.settings)
        found = _syncs[id(runtime)] = CrmSync(runtime.settings, runtime.engine, triggers)
    return found


def pipelines(runtime: Runtime) -> list[Pipeline]:
    handlers = CrmHandlers(sync_for(runtime))
    return [
        Pipeline.declared(
            CRM_SYNC,
            handlers.handlers,
            runtime.settings,
            batch_handlers=handlers.batch_handlers,
        )
    ]


def services(runtime: Runtime) -> list[Service]:
    return [CrmClients(sync_for(runtime))]


def tasks(runtime: Runtime) -> list[TaskSpec]:
    from streams.crm.feeds import CrmPoller
    from streams.crm.full_sync import FullSyncRunner

    settings, engine, producer = runtime.settings, runtime.engine, runtime.producer
    return [
        TaskSpec("crm-poller", lambda: CrmPoller(settings, engine, producer)),
        TaskSpec("crm-full-syncs", lambda: FullSyncRunner(settings, engine, producer)),
    ]
