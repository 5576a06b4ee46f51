"""The one place that wires the worker's dependencies and puts every pipeline on the road.

A service module (listed in :data:`SERVICE_MODULES`) exposes::

    def pipelines(runtime: Runtime) -> list[Pipeline]          # required
    def tasks(runtime: Runtime) -> list[TaskSpec]              # optional: background work
    def services(runtime: Runtime) -> list[mode.Service]       # optional: start/stop only

and never touches Kafka consumers, retry tiers or dead letters itself: for each pipeline this
module attaches one Faust agent over its input topics and declares one tier consumer per retry
tier; the dead-letter store consumes every pipeline's dead-letter topic.

Every background task — each tier consumer, the dead-letter store, every module's ``tasks`` —
runs under the one :class:`~streams.supervision.Supervisor` (restart with backoff, ``/health``
says which is down and why, metrics count it). A module's ``services`` may only start and
stop things: a :class:`mode.Service` with a ``Service.task`` of its own is refused, because
such a task that raised would crash the worker instead of being restarted.

Agents (:mod:`streams.road.agent`) run one actor per assigned partition, never several on one
partition: with more, Faust can commit the offset of a record that is still in flight
(faust-streaming #606), which the commit discipline forbids.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy
from mode import Service

from streams.dead_letters import DeadLetterStore
from streams.road import FailureRouter, Pipeline, TierConsumer
from streams.supervision import TaskSpec
from synapseops.errors import ConfigurationError
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import Settings

log = get_logger(__name__)

SERVICE_MODULES: tuple[str, ...] = (
    "streams.event_log.pipeline",
    "streams.integration.pipeline",
    "streams.payments.pipeline",
    "streams.notifications.pipeline",
    "streams.aggregation.pipeline",
    "streams.crm.pipeline",
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


@dataclass
class Loaded:
    """What the chosen service modules contribute to this worker."""

    pipelines: list[Pipeline] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    tasks: list[TaskSpec] = field(default_factory=list)


def load_services(runtime: Runtime, modules: Sequence[str] = SERVICE_MODULES) -> Loaded:
    """The pipelines (and their modules' tasks and services) this worker runs.

    ``SYNAPSEOPS_WORKER_PIPELINES`` narrows them to the named ones; a module none of whose
    pipelines is chosen contributes no tasks or services either.
    """
    wanted = runtime.settings.worker.pipeline_names
    loaded = Loaded()
    known: set[str] = set()
    for name in modules:
        module: Any = importlib.import_module(name)
        declared = module.pipelines(runtime)
        known.update(p.name for p in declared)
        chosen = [p for p in declared if not wanted or p.name in wanted]
        loaded.pipelines.extend(chosen)
        if not chosen:
            continue
        if hasattr(module, "tasks"):
            loaded.tasks.extend(module.tasks(runtime))
        if hasattr(module, "services"):
            for service in module.services(runtime):
                _refuse_unsupervised(name, service)
                loaded.services.append(service)
    unknown = wanted - known
    if unknown:
        raise ConfigurationError(
            f"SYNAPSEOPS_WORKER_PIPELINES names unknown pipeline(s) {sorted(unknown)}; "
            f"known: {sorted(known)}"
        )
    return loaded


def _refuse_unsupervised(module: str, service: Service) -> None:
    background = [task.fun.__name__ for task in service._get_tasks()]
    if background:
        raise ConfigurationError(
            f"{module}: {type(service).__name__} runs background task(s) {background} outside "
            "supervision; declare them in tasks(runtime) as TaskSpecs instead"
        )


def road_tasks(runtime: Runtime, pipelines: Sequence[Pipeline]) -> list[TaskSpec]:
    """One supervised task per retry tier of each pipeline and one for its parking topic
    (records whose ``Retry-After`` outlasts every tier wait there), and the dead-letter store."""
    settings = runtime.settings
    specs: list[TaskSpec] = []
    for pipeline in pipelines:
        tiers: list[int | None] = [*range(len(pipeline.spec.retry_delays)), None]
        for tier in tiers:
            topic = pipeline.spec.retry_topic(tier) if tier is not None else None
            specs.append(
                TaskSpec(
                    f"tier:{topic or pipeline.spec.parking_topic}",
                    _tier_factory(runtime, pipeline, tier),
                )
            )
    dead_letter_pipelines = {pipeline.name: pipeline.spec for pipeline in pipelines}
    specs.append(
        TaskSpec(
            "dead-letter-store",
            lambda: DeadLetterStore(
                settings, runtime.engine, runtime.producer, pipelines=dead_letter_pipelines
            ),
        )
    )
    return specs


def _tier_factory(
    runtime: Runtime, pipeline: Pipeline, tier: int | None
) -> Callable[[], TierConsumer]:
    kafka, group = runtime.settings.kafka, runtime.settings.worker.group_id
    size = runtime.settings.road.batch_size
    return lambda: TierConsumer(pipeline, tier, runtime.router, kafka, group, batch_size=size)


class SharedProducer(Service):
    """The lifetime of the runtime's producer: closed (flushed) when the worker stops.

    Listed before the modules' services and the supervisor: mode stops services in reverse
    order, so everything that produces has stopped by the time this closes the producer.
    """

    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime

    async def on_stop(self) -> None:
        await asyncio.to_thread(self.runtime.producer.close)
