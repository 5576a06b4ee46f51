"""The API Integration service on the road: source events mapped and sent to their targets.

``pipelines(runtime)`` gives the ``integration-delivery`` pipeline over ``integration.events``
(source events from webhooks, pollers and Kafka-topic sources) and ``integration.commands``
(re-runs), one handler per message kind, so a re-run that failed once is still a re-run on a
retry tier or after a replay. ``tasks(runtime)`` gives the REST pollers and the Kafka-topic
forwarders (both supervised), ``services(runtime)`` the owner of the HTTP clients. The work
per flow (:class:`Delivery`):

1. a succeeded run of (flow, source event) exists → nothing to do (duplicates are absorbed);
2. the mapping version (the flow's pinned one or the latest) maps the raw body — a failed
   rule is recorded in the Run (``failed_rule``) and raised as fatal: the dead letter;
3. the request goes out through :class:`sinks.http.HttpTarget` with the credential's headers
   and the ``Idempotency-Key`` of (flow, source event), through the SSRF guard (only public
   addresses and ``SYNAPSEOPS_HTTP_ALLOWED_HOSTS``): 2xx → ``succeeded``; timeouts, 429 and
   5xx → ``failed`` and retryable (the road's tiers); a 3xx (never followed), any other 4xx,
   a refused address or an oversized 2xx body → ``dead`` and fatal, with the response
   (status, headers, the ``Location`` of a redirect, the body) in the Run.

An event feeding several flows is delivered to each; the record fails (retryable first, then
fatal) if any flow failed, and a retry skips the flows that already succeeded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from mode import Service

from sinks.http import HttpTarget, TargetResponse
from sinks.http_guard import is_forbidden_header
from sinks.integration import runs as run_log
from sinks.integration.credentials import auth_headers
from sinks.integration.store import (
    enabled_flows_for,
    get_row,
    load_credential,
    remember_all_credentials,
    resolve_mapping,
    source_endpoint,
)
from sinks.integration.tables import DEAD, FAILED, SUCCEEDED, connectors, endpoints, flows
from streams.bootstrap import Runtime
from streams.integration.commands import decode_command
from streams.integration.delivery import (
    OutboundRequest,
    SourceEvent,
    Target,
    build_request,
    idempotency_key,
    map_body,
    source_event,
)
from streams.mapping import CompiledMapping, compile_mapping
from streams.road import Outcome, Pipeline, RoadRecord
from streams.road.pipeline import Handler
from streams.supervision import TaskSpec
from synapseops import headers as kh
from synapseops.errors import (
    MappingFailed,
    RateLimited,
    RecordNotFound,
    RetryableError,
    SchemaInvalid,
    TargetRejected,
    TargetUnavailable,
)
from synapseops.ids import trace_id_of
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import INTEGRATION_DELIVERY, INTEGRATION_EVENT, INTEGRATION_RERUN

log = get_logger(__name__)

MAPPING_CACHE_SIZE = 256


@dataclass(frozen=True)
class FlowPlan:
    """Everything one flow needs to deliver an event, read once per record."""

    flow_id: int
    mapping_id: int
    pinned_version: int | None
    target: Target
    target_connector_id: int
    auth: Mapping[str, str]
    hide_headers: tuple[str, ...]


class Delivery:
    """The delivery pipeline's handler and the clients it keeps between records."""

    def __init__(self, settings: Settings, engine: sqlalchemy.Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._clients: dict[tuple[int, str, float], HttpTarget] = {}
        # Mapping versions are immutable, so a compiled one never goes stale.
        self._mappings: dict[tuple[int, int], CompiledMapping] = {}

    # ---- the handlers, one per message kind ------------------------------------------------

    @property
    def handlers(self) -> dict[str, Handler]:
        """What the pipeline dispatches to (the road picks by message kind, never by topic)."""
        return {INTEGRATION_EVENT: self.deliver_event, INTEGRATION_RERUN: self.rerun}

    async def deliver_event(self, record: RoadRecord) -> Outcome:
        """A source event: delivered through every enabled flow of its endpoint."""
        event = source_event(record)
        plans = await asyncio.to_thread(self._plans_for, event)
        if not plans:
            return Outcome("skipped", f"no enabled flow for {event.connector}/{event.endpoint}")
        history = record.history
        first_try = history.attempt + 1
        statuses: list[str] = []
        retryable: BaseException | None = None
        fatal: BaseException | None = None
        for plan in plans:
            try:
                statuses.append(
                    await self.deliver(
                        plan, event, attempt=first_try, fresh_attempt=history.replay_count > 0
                    )
                )
            except RetryableError as exc:
                retryable = retryable or exc
            except Exception as exc:  # fatal for this flow; the others still get the event
                fatal = fatal or exc
        if retryable is not None:
            raise retryable
        if fatal is not None:
            raise fatal
        done = statuses.count("done")
        return Outcome("done" if done else "skipped", f"{done} of {len(plans)} flow(s) delivered")

    async def rerun(self, record: RoadRecord) -> Outcome:
        """Re-execute a run's source event (kept raw) with the pinned or latest mapping."""
        command = decode_command(record.value)
        run = await asyncio.to_thread(run_log.get_run, self.engine, command.run_id)
        if run is None:
            raise SchemaInvalid(f"re-run of run {command.run_id}: no such run")
        kept = await asyncio.to_thread(run_log.load_source, self.engine, run)
        if kept is None:
            raise SchemaInvalid(f"re-run of run {run.id}: its source event was not kept")
        event = SourceEvent(
            event_id=kept.event_id,
            connector=kept.connector,
            endpoint=kept.endpoint,
            body=kept.body,
            entity_key=kept.entity_key,
            event_type=kept.event_type,
            traceparent=kept.traceparent,
            flow_id=str(run.flow_id),
            headers={kh.CONTENT_TYPE: kept.content_type} if kept.content_type else {},
        )
        plan = await asyncio.to_thread(lambda: self._plan(get_row(self.engine, flows, run.flow_id)))
        if command.mapping == "pinned":
            # The version the re-run run used; the flow's own when it never got that far.
            plan = _pin(plan, run.mapping_version or plan.pinned_version)
        else:
            plan = _pin(plan, None)
        status = await self.deliver(plan, event, attempt=0, fresh_attempt=True, rerun_of=run.id)
        return Outcome("done" if status == "done" else "skipped", f"re-run of run {run.id}")

    # ---- one flow ----------------------------------------------------------------------

    async def deliver(
        self,
        plan: FlowPlan,
        event: SourceEvent,
        *,
        attempt: int,
        fresh_attempt: bool = False,
        rerun_of: int | None = None,
    ) -> str:
        """Deliver ``event`` through one flow: ``"done"``, ``"skipped"`` (already delivered),
        or the error tree (after the Run is written)."""
        started = time.perf_counter()
        prepared = await asyncio.to_thread(
            self._start, plan, event, attempt, fresh_attempt, rerun_of
        )
        if prepared is None:
            return "skipped"
        run_id, version = prepared
        request: OutboundRequest | None = None
        try:
            output = map_body(
                self._compiled(plan.mapping_id, version.version, version.rules), event.body
            )
            key = idempotency_key(plan.flow_id, event.event_id)
            request = build_request(
                plan.target, output, key=key, auth_headers=plan.auth, traceparent=event.traceparent
            )
            client = self._client(plan)
            response = await client.request(
                request.method, request.path, content=request.body, headers=request.headers
            )
        except BaseException as exc:
            await asyncio.to_thread(self._finish_failed, plan, run_id, started, exc, request)
            raise
        recorded = run_log.RecordedRequest(
            request.method, plan.target.base_url + request.path, request.headers, request.body
        )
        await asyncio.to_thread(
            run_log.finish_run,
            self.engine,
            run_id,
            status=SUCCEEDED,
            duration_ms=_ms_since(started),
            request=recorded,
            response=_recorded(response),
            hide_headers=plan.hide_headers,
        )
        return "done"

    def _start(
        self,
        plan: FlowPlan,
        event: SourceEvent,
        attempt: int,
        fresh_attempt: bool,
        rerun_of: int | None,
    ) -> tuple[int, Any] | None:
        if run_log.succeeded_run(self.engine, plan.flow_id, event.event_id) is not None:
            return None
        version = resolve_mapping(self.engine, plan.mapping_id, plan.pinned_version)
        if fresh_attempt:
            # Re-runs and replays add an attempt; a redelivered record rewrites its own.
            attempt = max(attempt, run_log.next_attempt(self.engine, plan.flow_id, event.event_id))
        source = run_log.SourceRecord(
            event_id=event.event_id,
            connector=event.connector,
            endpoint=event.endpoint,
            body=event.body,
            content_type=event.headers.get(kh.CONTENT_TYPE),
            entity_key=event.entity_key,
            event_type=event.event_type,
            traceparent=event.traceparent,
        )
        run_id = run_log.start_run(
            self.engine,
            flow_id=plan.flow_id,
            source=source,
            attempt=max(attempt, 1),
            mapping_version=version.version,
            trace_id=trace_id_of(event.traceparent),
            rerun_of=rerun_of,
        )
        return run_id, version

    def _finish_failed(
        self,
        plan: FlowPlan,
        run_id: int,
        started: float,
        exc: BaseException,
        request: OutboundRequest | None,
    ) -> None:
        retryable = isinstance(exc, RetryableError)
        failed_rule = (
            exc.errors[0].message if isinstance(exc, MappingFailed) and exc.errors else None
        )
        recorded_request = (
            run_log.RecordedRequest(
                request.method, plan.target.base_url + request.path, request.headers, request.body
            )
            if request is not None
            else None
        )
        response = None
        if isinstance(exc, TargetRejected | TargetUnavailable) and exc.status is not None:
            response = run_log.RecordedResponse(exc.status, exc.headers, exc.body.encode())
        elif isinstance(exc, RateLimited):
            response = run_log.RecordedResponse(429, {}, b"")
        run_log.finish_run(
            self.engine,
            run_id,
            status=FAILED if retryable else DEAD,
            duration_ms=_ms_since(started),
            request=recorded_request,
            response=response,
            error=exc,
            failed_rule=failed_rule,
            hide_headers=plan.hide_headers,
        )

    # ---- configuration reads (blocking; run in a thread) --------------------------------

    def _plans_for(self, event: SourceEvent) -> list[FlowPlan]:
        try:
            endpoint = source_endpoint(self.engine, event.connector, event.endpoint)
        except RecordNotFound:
            return []
        chosen = [
            row
            for row in enabled_flows_for(self.engine, int(endpoint["id"]))
            if event.flow_id is None or str(row["id"]) == event.flow_id
        ]
        return [self._plan(row) for row in chosen]

    def _plan(self, flow: Mapping[str, Any]) -> FlowPlan:
        target_endpoint = get_row(self.engine, endpoints, int(flow["target_endpoint_id"]))
        connector = get_row(self.engine, connectors, int(target_endpoint["connector_id"]))
        config = {**(connector.get("config") or {}), **(target_endpoint.get("config") or {})}
        target = Target(
            connector=str(connector["name"]),
            base_url=str(connector["base_url"] or ""),
            path=str(target_endpoint["path"] or "/"),
            method=str(target_endpoint["method"] or "POST"),
            timeout_s=float(config.get("timeout_s", 10.0)),
            # Host and hop-by-hop headers are refused on write; a row from before is cleaned.
            headers={
                str(k): str(v)
                for k, v in (config.get("headers") or {}).items()
                if not is_forbidden_header(str(k))
            },
        )
        auth: dict[str, str] = {}
        hide: tuple[str, ...] = ()
        if flow["credential_id"] is not None:
            credential = load_credential(self.engine, self.settings, int(flow["credential_id"]))
            auth = auth_headers(credential)
            hide = (credential.header_name,) if credential.header_name else ()
        return FlowPlan(
            flow_id=int(flow["id"]),
            mapping_id=int(flow["mapping_id"]),
            pinned_version=flow["mapping_version"],
            target=target,
            target_connector_id=int(connector["id"]),
            auth=auth,
            hide_headers=hide,
        )

    # ---- caches --------------------------------------------------------------------------

    def _compiled(self, mapping_id: int, version: int, rules: Mapping[str, Any]) -> CompiledMapping:
        cache_key = (mapping_id, version)
        compiled = self._mappings.get(cache_key)
        if compiled is None:
            if len(self._mappings) >= MAPPING_CACHE_SIZE:
                self._mappings.pop(next(iter(self._mappings)))
            compiled = self._mappings[cache_key] = compile_mapping(rules)
        return compiled

    def _client(self, plan: FlowPlan) -> HttpTarget:
        cache_key = (plan.target_connector_id, plan.target.base_url, plan.target.timeout_s)
        client = self._clients.get(cache_key)
        if client is None:
            client = self._clients[cache_key] = HttpTarget.for_connector(
                plan.target.connector,
                plan.target.base_url,
                self.settings,
                timeout_s=plan.target.timeout_s,
            )
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(client.aclose() for client in clients))


def _pin(plan: FlowPlan, version: int | None) -> FlowPlan:
    return FlowPlan(
        flow_id=plan.flow_id,
        mapping_id=plan.mapping_id,
        pinned_version=version,
        target=plan.target,
        target_connector_id=plan.target_connector_id,
        auth=plan.auth,
        hide_headers=plan.hide_headers,
    )


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _recorded(response: TargetResponse) -> run_log.RecordedResponse:
    return run_log.RecordedResponse(response.status, response.headers, response.body)


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
        found = _deliveries[id(runtime)] = Delivery(runtime.settings, runtime.engine)
    return found


def pipelines(runtime: Runtime) -> list[Pipeline]:
    delivery = delivery_for(runtime)
    return [Pipeline.declared(INTEGRATION_DELIVERY, delivery.handlers, runtime.settings)]


def services(runtime: Runtime) -> list[Service]:
    return [DeliveryClients(delivery_for(runtime))]


def tasks(runtime: Runtime) -> list[TaskSpec]:
    """The REST pollers and the Kafka-topic forwarders, supervised (streams/supervision.py)."""
    from streams.integration.kafka_source import KafkaSourceForwarder
    from streams.integration.poller import RestPoller

    settings, engine, producer = runtime.settings, runtime.engine, runtime.producer
    return [
        TaskSpec("rest-poller", lambda: RestPoller(settings, engine, producer)),
        TaskSpec("kafka-sources", lambda: KafkaSourceForwarder(settings, engine, producer)),
    ]
