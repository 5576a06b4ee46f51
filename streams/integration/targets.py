"""Sending one mapped event to one flow's target, and what the Run says about it.

:meth:`Targets.send` maps the event with the flow's compiled mapping and sends the output:

- an HTTP target: through :class:`sinks.http.HttpTarget` with the credential's headers and the
  ``Idempotency-Key`` of (flow, source event), through the SSRF guard (only public addresses
  and ``SYNAPSEOPS_HTTP_ALLOWED_HOSTS``): 2xx → ``succeeded``; timeouts, 429 and 5xx →
  ``failed`` and retryable (the road's tiers); a 3xx (never followed), any other 4xx, a
  refused address or an oversized 2xx body → ``dead`` and fatal, with the response (status,
  headers, the ``Location`` of a redirect, the body) in the Run;
- a Kafka target (:mod:`streams.integration.kafka_target`): produced through the worker's
  idempotent ``acks=all`` producer and awaited until durable; only then is the Run written
  ``succeeded`` (by the caller). Exactly one output per source event across crashes: a crash
  after the produce and before the Run's commit produces the record again on redelivery
  (never loses it), with the same ``Idempotency-Key`` header, by which a consumer dedupes;
  an event whose Run says ``succeeded`` is never produced again.

A mapping rule that fails is recorded in the Run (``failed_rule``) and is fatal. Nothing here
writes to the database: the answer is a :class:`~sinks.integration.run_batch.RunFinish` (and
the error the record fails with), written with the rest of the batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sinks.http import HttpTarget, TargetResponse
from sinks.integration.run_batch import RunFinish, Started
from sinks.integration.run_documents import RecordedRequest, RecordedResponse
from sinks.integration.tables import DEAD, FAILED, SUCCEEDED
from streams.integration.catalog import FlowPlan
from streams.integration.delivery import (
    OutboundRequest,
    SourceEvent,
    Target,
    build_request,
    idempotency_key,
    map_body,
)
from streams.integration.kafka_target import KafkaTarget, record_headers, record_key
from streams.mapping import dump_output
from synapseops.errors import (
    ConfigurationError,
    MappingFailed,
    RateLimited,
    RetryableError,
    TargetRejected,
    TargetUnavailable,
)
from synapseops.kafka import AsyncProducer, Outgoing
from synapseops.settings import Settings


@dataclass(frozen=True)
class Sent:
    """One flow's delivery of one event: the Run's outcome, and the error (if any) the record
    fails with for this flow."""

    finish: RunFinish
    failure: Exception | None = None


class Targets:
    """The clients of the targets, kept between batches (closed by :meth:`aclose`)."""

    def __init__(self, settings: Settings, producer: AsyncProducer | None = None) -> None:
        self.settings = settings
        self._producer = producer
        self._own_producer: AsyncProducer | None = None
        self._clients: dict[tuple[int, str, float], HttpTarget] = {}

    async def send(self, plan: FlowPlan, event: SourceEvent, started: Started) -> Sent:
        if isinstance(plan.target, KafkaTarget):
            (sent,) = await self.send_kafka([(plan, event, started)])
            return sent
        begun = time.perf_counter()
        request: RecordedRequest | None = None
        try:
            if plan.mapping is None:
                raise plan.problem or ConfigurationError(f"flow {plan.flow_id} has no mapping")
            output = map_body(plan.mapping, event.body)
            outbound = build_request(
                plan.target,
                output,
                key=idempotency_key(plan.flow_id, event.event_id),
                auth_headers=plan.auth,
                traceparent=event.traceparent,
            )
            request = _recorded_request(plan.target, outbound, output)
            answer = await self._client(plan, plan.target).request(
                outbound.method, outbound.path, content=outbound.body, headers=outbound.headers
            )
        except Exception as exc:
            return Sent(_failed(plan, started, begun, exc, request), exc)
        return Sent(_succeeded(plan, started, begun, request, _recorded(answer)))

    async def send_kafka(self, jobs: Sequence[tuple[FlowPlan, SourceEvent, Started]]) -> list[Sent]:
        """Deliveries to Kafka targets, one answer per job in order: every record produced at
        once, in the jobs' order, and awaited once (one hop back onto the loop for the lot, no
        task per record). Order per key holds: the records of one key go to one partition, in
        the order produced, through the idempotent producer."""
        prepared = [_kafka_record(*job) for job in jobs]
        records = [one.record for one in prepared if isinstance(one, _Produce)]
        landed = iter(await self._kafka().send_many(records) if records else [])
        answers = []
        for one in prepared:
            if isinstance(one, Sent):
                answers.append(one)
                continue
            where = next(landed)
            if isinstance(where, BaseException):
                failed = _failed(one.plan, one.started, one.begun, where, one.request)
                answers.append(Sent(failed, where))
                continue
            sent = one.request  # and where it landed (dataclasses.replace is slow)
            request = RecordedRequest(
                sent.method, sent.url, sent.headers, sent.body, sent.document,
                landed=f"/{where[0]}@{where[1]}",
            )  # fmt: skip
            answers.append(Sent(_succeeded(one.plan, one.started, one.begun, request, None)))
        return answers

    def _kafka(self) -> AsyncProducer:
        if self._producer is None:
            # A Delivery built without the worker's producer (tests, benchmarks) opens its own.
            self._producer = self._own_producer = AsyncProducer(self.settings.kafka)
        return self._producer

    def _client(self, plan: FlowPlan, target: Target) -> HttpTarget:
        cache_key = (plan.target_connector_id, target.base_url, target.timeout_s)
        client = self._clients.get(cache_key)
        if client is None:
            client = self._clients[cache_key] = HttpTarget.for_connector(
                target.connector, target.base_url, self.settings, timeout_s=target.timeout_s
            )
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(client.aclose() for client in clients))
        if self._own_producer is not None:
            own, self._own_producer = self._own_producer, None
            await asyncio.to_thread(own.close)


@dataclass(frozen=True)
class _Produce:
    """A Kafka delivery ready to produce (the Run's request says where it landed, after)."""

    plan: FlowPlan
    started: Started
    begun: float
    record: Outgoing
    request: RecordedRequest


def _kafka_record(plan: FlowPlan, event: SourceEvent, started: Started) -> _Produce | Sent:
    """The record of one Kafka delivery, or the failed delivery (a mapping that fails, an
    output without its key)."""
    begun = time.perf_counter()
    request: RecordedRequest | None = None
    try:
        target = plan.target
        if plan.mapping is None or not isinstance(target, KafkaTarget):
            raise plan.problem or ConfigurationError(f"flow {plan.flow_id} has no mapping")
        output = map_body(plan.mapping, event.body)
        value = dump_output(output)
        headers = record_headers(
            idempotency_key=idempotency_key(plan.flow_id, event.event_id),
            run_id=started.run_id,
            event_id=event.event_id,
            flow_id=plan.flow_id,
            traceparent=event.traceparent,
        )
        shown = {name: raw.decode() for name, raw in headers}
        request = RecordedRequest("PRODUCE", f"kafka://{target.topic}", shown, value, output)
        record = Outgoing(target.topic, value, key=record_key(target, output), headers=headers)
    except Exception as exc:
        return Sent(_failed(plan, started, begun, exc, request), exc)
    return _Produce(plan, started, begun, record, request)


def _succeeded(
    plan: FlowPlan,
    started: Started,
    begun: float,
    request: RecordedRequest,
    response: RecordedResponse | None,
) -> RunFinish:
    return RunFinish(
        started.run_id,
        SUCCEEDED,
        _ms_since(begun),
        source=started.source,
        request=request,
        response=response,
        hide_headers=plan.hide_headers,
    )


def _failed(
    plan: FlowPlan,
    started: Started,
    begun: float,
    exc: BaseException,
    request: RecordedRequest | None,
) -> RunFinish:
    retryable = isinstance(exc, RetryableError)
    failed_rule = exc.errors[0].message if isinstance(exc, MappingFailed) and exc.errors else None
    response = None
    if isinstance(exc, TargetRejected | TargetUnavailable) and exc.status is not None:
        response = RecordedResponse(exc.status, exc.headers, exc.body.encode())
    elif isinstance(exc, RateLimited):
        response = RecordedResponse(429, {}, b"")
    return RunFinish(
        started.run_id,
        FAILED if retryable else DEAD,
        _ms_since(begun),
        source=started.source,
        request=request,
        response=response,
        error=exc,
        failed_rule=failed_rule,
        hide_headers=plan.hide_headers,
    )


def _recorded_request(
    target: Target, request: OutboundRequest, output: Mapping[str, Any]
) -> RecordedRequest:
    return RecordedRequest(
        request.method, target.base_url + request.path, request.headers, request.body, output
    )


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _recorded(response: TargetResponse) -> RecordedResponse:
    return RecordedResponse(response.status, response.headers, response.body)
