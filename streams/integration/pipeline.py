"""The API Integration service on the road: source events mapped and sent to their targets.

``pipelines(runtime)`` gives the ``integration-delivery`` pipeline over ``integration.events``
(source events from webhooks, pollers and Kafka-topic sources) and ``integration.commands``
(re-runs), one handler per message kind, so a re-run that failed once is still a re-run on a
retry tier or after a replay. Source events have a batch handler (:mod:`streams.integration.
batches`: the flow catalog checked once, the Runs started in one transaction, deliveries
concurrent across keys, the Runs finished in one transaction); the per-record handler is that
batch handler on a batch of one — one code path. ``tasks(runtime)`` gives the REST pollers and
the Kafka-topic sources (both supervised; a source topic's records are delivered through this
pipeline where they are read), ``services(runtime)`` the owner of the clients.
The work per flow and event:

1. a succeeded run of (flow, source event) exists → nothing to do (duplicates are absorbed);
2. the flow's mapping version (pinned, or the latest — from the catalog) maps the raw body — a
   failed rule is recorded in the Run (``failed_rule``) and raised as fatal: the dead letter;
3. the output goes to the target (:mod:`streams.integration.targets`: an HTTP endpoint with
   the ``Idempotency-Key`` of (flow, source event), or a Kafka topic).

An event feeding several flows is delivered to each; the record fails (retryable first, then
fatal) if any flow failed, and a retry skips the flows that already succeeded.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import sqlalchemy
from mode import Service

from sinks.integration import runs as run_log
from sinks.integration.mapping_store import resolve_mapping
from sinks.integration.run_batch import finish_runs
from sinks.integration.store import remember_all_credentials
from streams.bootstrap import Runtime
from streams.integration.batches import Answer, EventBatches, Job
from streams.integration.catalog import FlowCatalog, FlowPlan
from streams.integration.commands import decode_command
from streams.integration.failures import announce
from streams.integration.source_config import reserved_topics
from streams.integration.targets import Targets
from streams.road import Outcome, Pipeline, RoadRecord
from streams.road.pipeline import BatchHandler, Handler
from streams.supervision import TaskSpec
from streams.triggers import TriggerPublisher
from synapseops.errors import SchemaInvalid
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import INTEGRATION_DELIVERY, INTEGRATION_EVENT, INTEGRATION_RERUN

log = get_logger(__name__)


class Delivery:
    """The delivery pipeline's handlers, its flow catalog and the target clients it keeps."""

    def __init__(
        self,
        settings: Settings,
        engine: sqlalchemy.Engine,
        producer: AsyncProducer | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.catalog = FlowCatalog(settings, reserved_topics(settings))
        self.targets = Targets(settings, producer)
        self.batches = EventBatches(engine, self.catalog, self.targets)
        self.triggers = TriggerPublisher(producer, settings) if producer is not None else None

    @property
    def handlers(self) -> dict[str, Handler]:
        """What the pipeline dispatches to (the road picks by message kind, never by topic)."""
        return {INTEGRATION_EVENT: self.deliver_event, INTEGRATION_RERUN: self.rerun}

    @property
    def batch_handlers(self) -> dict[str, BatchHandler]:
        return {INTEGRATION_EVENT: self.deliver_events}

    async def deliver_events(self, records: Sequence[RoadRecord]) -> list[Answer]:
        """Source events, a batch at a time: one answer per record (fatal ones announced as
        ``integration_failure`` triggers, :mod:`streams.integration.failures`)."""
        answers = await self.batches.deliver(records)
        if self.triggers is None:
            return answers
        return await announce(self.triggers, records, answers)

    async def deliver_event(self, record: RoadRecord) -> Outcome:
        """A source event: the batch handler on a batch of one."""
        (answer,) = await self.deliver_events([record])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def rerun(self, record: RoadRecord) -> Outcome:
        """Re-execute a run's source event (kept raw) with the pinned or latest mapping."""
        command = decode_command(record.value)
        run = await asyncio.to_thread(run_log.get_run, self.engine, command.run_id)
        if run is None:
            raise SchemaInvalid(f"re-run of run {command.run_id}: no such run")
        kept = await asyncio.to_thread(run_log.load_source, self.engine, run)
        if kept is None:
            raise SchemaInvalid(f"re-run of run {run.id}: its source event was not kept")
        event = dataclasses.replace(kept, flow_id=str(run.flow_id))
        plan = await asyncio.to_thread(self._rerun_plan, run, command.mapping)
        job = Job(0, plan, event, attempt=0, fresh_attempt=True, rerun_of=run.id)
        started = await asyncio.to_thread(self.batches.start_one, job)
        if started is None:
            return Outcome("skipped", f"re-run of run {run.id}")
        (sent,) = await self.batches.send_all([job], [started])
        assert sent is not None
        await asyncio.to_thread(finish_runs, self.engine, [sent.finish])
        if sent.failure is not None:
            raise sent.failure
        return Outcome("done", f"re-run of run {run.id}")

    def _rerun_plan(self, run: run_log.RunRow, mapping: str) -> FlowPlan:
        with self.engine.connect() as conn:
            self.catalog.refresh(conn)
        plan = self.catalog.plan(run.flow_id)
        if plan.problem is not None:
            raise plan.problem
        # "pinned": the version the re-run run used (the flow's own when it never got that
        # far); "latest": the mapping's newest, even for a pinned flow.
        version = (run.mapping_version or plan.pinned_version) if mapping == "pinned" else None
        chosen = resolve_mapping(self.engine, plan.mapping_id, version)
        return self.catalog.pinned(plan, chosen.version, chosen.rules)

    async def aclose(self) -> None:
        await self.targets.aclose()


class DeliveryClients(Service):
    """Closes the delivery's HTTP clients when the worker stops; at start, teaches the
    scrubber every stored credential, so a secret is hidden from this worker's logs and dead
    letters even before (or without) this worker opening it."""

    def __init__(self, delivery: Delivery, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delivery = delivery

    async def on_start(self) -> None:
        delivery = self.delivery
        try:
            await asyncio.to_thread(remember_all_credentials, delivery.engine, delivery.settings)
        except Exception as exc:  # the worker still runs; each credential is learnt on open
            log.warning("could not read the credentials for redaction", extra={"error": str(exc)})

    async def on_stop(self) -> None:
        await self.delivery.aclose()


_deliveries: dict[int, Delivery] = {}


def delivery_for(runtime: Runtime) -> Delivery:
    """One :class:`Delivery` per runtime, shared by ``pipelines`` and ``services``."""
    found = _deliveries.get(id(runtime))
    if found is None:
        found = _deliveries[id(runtime)] = Delivery(
            runtime.settings, runtime.engine, runtime.producer
        )
    return found


def delivery_pipeline(runtime: Runtime) -> Pipeline:
    delivery = delivery_for(runtime)
    return Pipeline.declared(
        INTEGRATION_DELIVERY,
        delivery.handlers,
        runtime.settings,
        batch_handlers=delivery.batch_handlers,
    )


def pipelines(runtime: Runtime) -> list[Pipeline]:
    return [delivery_pipeline(runtime)]


def services(runtime: Runtime) -> list[Service]:
    return [DeliveryClients(delivery_for(runtime))]


def tasks(runtime: Runtime) -> list[TaskSpec]:
    """The REST pollers and the Kafka-topic sources (delivered on the road where they are
    read: streams/integration/topic_delivery.py), supervised (streams/supervision.py)."""
    from streams.integration.kafka_source import KafkaSourceForwarder
    from streams.integration.poller import RestPoller
    from streams.integration.topic_delivery import TopicDelivery

    settings, engine, producer = runtime.settings, runtime.engine, runtime.producer
    direct = TopicDelivery(delivery_pipeline(runtime), runtime.router)
    return [
        TaskSpec("rest-poller", lambda: RestPoller(settings, engine, producer)),
        TaskSpec("kafka-sources", lambda: KafkaSourceForwarder(settings, engine, producer, direct)),
    ]
