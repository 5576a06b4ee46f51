"""A pipeline declares itself into the road; :func:`process` runs one record through it.

A pipeline has one handler per message kind it takes (:mod:`streams.road.kinds` says which
kind a record is); :func:`process` is the only way a record meets its handler, on the main
input and on every retry tier alike. It never lets the handler's exception escape (in Faust
an escaped exception acks the record and it is gone): the error is classified and the record
handed to the :class:`~streams.road.router.FailureRouter`, whose hand-off is durable when
``process`` returns. The caller commits the record's offset after ``process`` returns, never before.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from streams.road import metrics
from streams.road.kinds import kind_of
from streams.road.record import RoadRecord
from streams.road.tiers import FATAL, RETRYABLE, Hop
from synapseops import errors
from synapseops.errors import KafkaUnavailable
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import PipelineSpec, platform_registry

if TYPE_CHECKING:
    from streams.road.router import FailureRouter

log = get_logger(__name__)

OutcomeStatus = Literal["done", "rejected", "skipped"]
# A hand-off the broker refused is tried again after 0.5 s, doubling up to 10 s: the record
# cannot be committed until it lands, so giving up would only mean losing it.
ROUTE_BACKOFF_INITIAL_S = 0.5
ROUTE_BACKOFF_MAX_S = 10.0


@dataclass(frozen=True)
class Outcome:
    """How the handler finished a record: ``done`` (effect durable), ``rejected`` (the outside
    world said no on purpose; recorded, never retried) or ``skipped`` (nothing to do, e.g. a
    duplicate)."""

    status: OutcomeStatus
    detail: str = ""


Handler = Callable[[RoadRecord], Awaitable[Outcome]]
# The batch contract (see :mod:`streams.road.batch`): records of ONE kind from ONE partition, in
# offset order; one answer per record, in the same order — its Outcome, or the exception that
# record failed with (classified and routed exactly as a raised one). Raising instead fails
# no record: the road falls back to the per-record handler for each of them.
BatchHandler = Callable[[Sequence[RoadRecord]], Awaitable[Sequence["Outcome | BaseException"]]]
Classifier = Callable[[BaseException], str]


@dataclass(frozen=True)
class Pipeline:
    """A processor on the road: its topics (``spec``), its work and its error classifier.

    ``handlers`` maps each message kind the pipeline takes to its handler; ``input_kinds``
    each input topic to the kinds it carries (see :mod:`streams.road.kinds`). A handler must
    be idempotent: after a crash a record may be handled again. It raises a
    :class:`~synapseops.errors.RetryableError` / :class:`~synapseops.errors.FatalError` /
    :class:`~synapseops.errors.BusinessRejection` (or returns ``Outcome("rejected")``).
    ``max_retry_after_s`` caps how long a ``Retry-After`` may hold a record.
    ``batch_handlers`` (a subset of the kinds) take a run of records at once; the per-record
    handler of the same kind stays the fallback for a batch that raised.
    """

    name: str
    spec: PipelineSpec
    handlers: Mapping[str, Handler]
    input_kinds: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    batch_handlers: Mapping[str, BatchHandler] = field(default_factory=dict)
    classify: Classifier = field(default=errors.classify)
    jitter: float = 0.2
    max_retry_after_s: float = 3600.0

    def __post_init__(self) -> None:
        if not self.handlers:
            raise errors.ConfigurationError(f"pipeline {self.name} has no handler")
        if extra := set(self.batch_handlers) - set(self.handlers):
            raise errors.ConfigurationError(
                f"pipeline {self.name}: batch handlers for {sorted(extra)} without a handler"
            )

    @classmethod
    def declared(
        cls,
        name: str,
        handlers: Mapping[str, Handler],
        settings: Settings,
        classify: Classifier = errors.classify,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
    ) -> Pipeline:
        """The pipeline ``name`` as the platform's topic registry declares it, with a handler
        for each kind its inputs carry (and none for a kind they do not)."""
        registry = platform_registry(settings.retry.delays)
        try:
            spec = registry.pipelines[name]
        except KeyError:
            raise errors.ConfigurationError(
                f"pipeline {name!r} is not declared in topics.registry"
            ) from None
        input_kinds = {topic: registry.get(topic).kinds for topic in spec.inputs}
        carried = {kind for kinds in input_kinds.values() for kind in kinds}
        if carried != set(handlers):
            raise errors.ConfigurationError(
                f"pipeline {name}: its inputs carry {sorted(carried)}, "
                f"it has handlers for {sorted(handlers)}"
            )
        return cls(
            name=name,
            spec=spec,
            handlers=dict(handlers),
            input_kinds=input_kinds,
            batch_handlers=dict(batch_handlers or {}),
            classify=classify,
            jitter=settings.retry.jitter,
            max_retry_after_s=settings.retry.max_retry_after_s,
        )

    def tier_group(self, worker_group: str) -> str:
        """The consumer group of this pipeline's tier consumers."""
        return f"{worker_group}.{self.name}.tiers"

    def kind_of(self, record: RoadRecord) -> str:
        """The message kind ``record`` is handled as; raises :class:`~synapseops.errors.
        UnknownKind` when no handler takes it."""
        inputs = {topic: tuple(self.input_kinds.get(topic, ())) for topic in self.spec.inputs}
        return kind_of(record, inputs, self.handlers)

    async def handle(self, record: RoadRecord) -> Outcome:
        """Run the handler of ``record``'s kind (raises what it raises)."""
        return await self.handlers[self.kind_of(record)](record)


def failure_kind(pipeline: Pipeline, exc: BaseException) -> str:
    """``retryable``, ``rejected`` or ``fatal`` for ``exc`` (a broken classifier → fatal)."""
    try:
        kind = pipeline.classify(exc)
    except Exception:  # a broken classifier must not lose the record: treat it as fatal
        log.exception("classifier failed", extra={"pipeline": pipeline.name})
        return FATAL
    return kind if kind in (RETRYABLE, "rejected") else FATAL


async def process(pipeline: Pipeline, record: RoadRecord, router: FailureRouter) -> Outcome | Hop:
    """Run ``record`` through ``pipeline``: its :class:`Outcome`, or the :class:`Hop` it was
    durably handed to. Only cancellation (and interpreter exit) escapes; a broker that will
    not take the hand-off is retried here, since the record must not be committed without it.
    """
    started = time.monotonic()
    result: Outcome | Hop
    try:
        outcome = await pipeline.handle(record)
        if not isinstance(outcome, Outcome):
            raise TypeError(f"handler of {pipeline.name} returned {type(outcome).__name__}")
        result = outcome
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        # Shutting down is not a failure of the record: it stays uncommitted and is redone.
        raise
    except BaseException as exc:
        kind = failure_kind(pipeline, exc)
        if kind == "rejected":
            result = Outcome("rejected", str(exc))
        else:
            result = await route_until_durable(pipeline, record, exc, kind, router)
    observe(pipeline, result, time.monotonic() - started)
    return result


async def route_until_durable(
    pipeline: Pipeline, record: RoadRecord, exc: BaseException, kind: str, router: FailureRouter
) -> Hop:
    """Hand ``record`` to its next hop, trying again while the broker is away; the hop."""
    backoff = ROUTE_BACKOFF_INITIAL_S
    while True:
        try:
            return await router.route(pipeline, record, exc, kind)
        except KafkaUnavailable:
            log.warning(
                "hand-off to the next hop failed; trying again",
                exc_info=True,
                extra=record.log_fields(pipeline.name) | {"backoff_s": backoff},
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, ROUTE_BACKOFF_MAX_S)


def observe(pipeline: Pipeline, result: Outcome | Hop, seconds: float) -> None:
    """Count one record's result and its processing time."""
    observe_all(pipeline, [(result, seconds)])


def observe_all(pipeline: Pipeline, results: Sequence[tuple[Outcome | Hop, float]]) -> None:
    """Count the results of a batch and their processing times: each metric's child looked
    up once per batch (``labels`` takes a lock and builds a key on every call)."""
    counts: Counter[str] = Counter()
    seconds = metrics.PROCESSING_SECONDS.labels(pipeline.name)
    for result, took in results:
        if isinstance(result, Hop):
            counts["dead" if result.dead else "retry"] += 1
        else:
            counts[result.status] += 1
        seconds.observe(took)
    for outcome, n in counts.items():
        metrics.RECORDS.labels(pipeline.name, outcome).inc(n)
