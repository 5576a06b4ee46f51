"""The one place that wires the worker's dependencies and puts every pipeline on the road.

A service module (listed in :data:`SERVICE_MODULES`) exposes::

    def pipelines(runtime: Runtime) -> list[Pipeline]          # required
    def services(runtime: Runtime) -> list[mode.Service]       # optional (pollers, ...)

and never touches Kafka consumers, retry tiers or dead letters itself: for each pipeline this
module attaches one Faust agent over its input topics and starts one tier consumer per retry
tier; the dead-letter store consumes every pipeline's dead-letter topic.

Agents run with ``concurrency=1`` on purpose: with more, Faust can commit the offset of a record
that is still in flight (faust-streaming #606), which the commit discipline forbids.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
import sqlalchemy
from mode import Service

from streams.road import FailureRouter, Pipeline, RoadRecord, TierConsumer, process, tier_consumers
from synapseops.errors import ConfigurationError
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import Settings

log = get_logger(__name__)

SERVICE_MODULES: tuple[str, ...] = (
    "streams.event_log",
    "streams.api_integration",
    "streams.payment_gateway",
)


@dataclass
class Runtime:
    """What pipelines share in one worker process; built once, passed down."""

    settings: Settings
    engine: sqlalchemy.Engine
    producer: AsyncProducer
    router: FailureRouter

    @classmethod
    def build(cls, settings: Settings, engine: sqlalchemy.Engine) -> Runtime:
        producer = AsyncProducer(settings.kafka)
        return cls(settings, engine, producer, FailureRouter(producer))


def load_services(
    runtime: Runtime, modules: Sequence[str] = SERVICE_MODULES
) -> tuple[list[Pipeline], list[Service]]:
    """The pipelines (and their modules' services) this worker runs.

    ``SYNAPSEOPS_WORKER_PIPELINES`` narrows them to the named ones; a module none of whose
    pipelines is chosen contributes no services either.
    """
    wanted = runtime.settings.worker.pipeline_names
    pipelines: list[Pipeline] = []
    services: list[Service] = []
    known: set[str] = set()
    for name in modules:
        module: Any = importlib.import_module(name)
        declared = module.pipelines(runtime)
        known.update(p.name for p in declared)
        chosen = [p for p in declared if not wanted or p.name in wanted]
        pipelines.extend(chosen)
        if chosen and hasattr(module, "services"):
            services.extend(module.services(runtime))
    unknown = wanted - known
    if unknown:
        raise ConfigurationError(
            f"SYNAPSEOPS_WORKER_PIPELINES names unknown pipeline(s) {sorted(unknown)}; "
            f"known: {sorted(known)}"
        )
    return pipelines, services


def attach_pipeline(app: faust.App, pipeline: Pipeline, router: FailureRouter) -> None:
    """One Faust agent over the pipeline's inputs; every record goes through the road."""
    source = app.topic(
        *pipeline.spec.inputs,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def run(stream: faust.StreamT[bytes]) -> None:
        # events(), not values: headers and coordinates travel with the record. Faust acks an
        # event when the loop asks for the next one, i.e. after process() made it durable.
        async for event in stream.events():
            await process(pipeline, RoadRecord.from_faust(event), router)

    app.agent(source, name=f"road.{pipeline.name}", concurrency=1)(run)


class RoadTiers(Service):
    """The retry-tier consumers of every pipeline, and the shared producer's lifetime."""

    def __init__(self, runtime: Runtime, pipelines: Sequence[Pipeline], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        self.pipelines = list(pipelines)
        self.consumers: list[TierConsumer] = []

    async def on_start(self) -> None:
        settings = self.runtime.settings
        for pipeline in self.pipelines:
            self.consumers.extend(
                tier_consumers(
                    pipeline, self.runtime.router, settings.kafka, settings.worker.group_id
                )
            )
        for consumer in self.consumers:
            consumer.start()
        log.info(
            "retry tiers started",
            extra={"pipelines": [p.name for p in self.pipelines], "tiers": len(self.consumers)},
        )

    async def on_stop(self) -> None:
        await asyncio.gather(*(consumer.stop() for consumer in self.consumers))
        self.consumers.clear()
        await asyncio.to_thread(self.runtime.producer.close)
