"""The flow catalog: source endpoint → its enabled flows, each with its target, its compiled
mapping and its credential's headers, held by the delivery worker between batches.

Loaded by one query (:func:`sinks.integration.catalog.flow_rows`) and refreshed when the
configuration changes: every write to the flow configuration bumps one version number in its
own transaction (triggers, migration 0010), and :meth:`FlowCatalog.refresh` reads that number
at the start of every batch — one statement, inside the batch's first transaction — and
reloads when it moved. So a change made through the API (or by hand) is seen by the next batch
after it commits, and nothing is read per event. Compiled mappings are kept across reloads by
(mapping, version): a version never changes once saved.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy

from sinks.http_guard import is_forbidden_header
from sinks.integration.catalog import FlowRow, config_version, flow_rows
from sinks.integration.credentials import auth_headers
from streams.integration.delivery import SourceEvent, Target
from streams.integration.kafka_target import KafkaTarget, kafka_target, kafka_target_problems
from streams.integration.source_config import ReservedTopics
from streams.mapping import CompiledMapping, compile_mapping
from synapseops.errors import ConfigurationError, RecordNotFound, SynapseOpsError
from synapseops.logging import get_logger
from synapseops.settings import Settings

log = get_logger(__name__)

MAPPING_CACHE_SIZE = 256


@dataclass(frozen=True)
class FlowPlan:
    """Everything one flow needs to deliver an event. ``problem``: why it cannot (raised for
    each event instead of a delivery, so the record dead-letters with the reason)."""

    flow_id: int
    mapping_id: int
    pinned_version: int | None
    mapping_version: int | None
    mapping: CompiledMapping | None
    target: Target | KafkaTarget
    target_connector_id: int
    auth: Mapping[str, str]
    hide_headers: tuple[str, ...]
    problem: SynapseOpsError | None = None


class FlowCatalog:
    """The flows by source endpoint and by id, as of configuration version :attr:`version`."""

    def __init__(self, settings: Settings, reserved: ReservedTopics) -> None:
        self.settings = settings
        self.reserved = reserved
        self.version: int | None = None
        self.reloads = 0
        self._by_endpoint: dict[tuple[str, str], list[FlowPlan]] = {}
        self._by_id: dict[int, FlowPlan] = {}
        self._mappings: dict[tuple[int, int], CompiledMapping] = {}
        # Batches of several partitions refresh from their own threads.
        self._lock = threading.Lock()

    def refresh(self, conn: sqlalchemy.Connection) -> bool:
        """Reload when the configuration moved since the last load; whether it reloaded."""
        version = config_version(conn)
        with self._lock:
            if version == self.version:
                return False
            self._load(conn, version)
            return True

    def _load(self, conn: sqlalchemy.Connection, version: int) -> None:
        rows = flow_rows(conn, self.settings)
        plans = [self._plan(row) for row in rows]
        by_endpoint: dict[tuple[str, str], list[FlowPlan]] = {}
        for row, plan in zip(rows, plans, strict=True):
            if row.enabled:
                by_endpoint.setdefault((row.source_connector, row.source_endpoint), []).append(plan)
        self._by_endpoint = by_endpoint
        self._by_id = {plan.flow_id: plan for plan in plans}
        self.version = version
        self.reloads += 1
        log.info("flow catalog loaded", extra={"config_version": version, "flows": len(plans)})

    def plans_for(self, event: SourceEvent) -> list[FlowPlan]:
        """The enabled flows of the event's endpoint (only the one it names, if it names one)."""
        plans = self._by_endpoint.get((event.connector, event.endpoint), [])
        if event.flow_id is None:
            return plans
        return [plan for plan in plans if str(plan.flow_id) == event.flow_id]

    def plan(self, flow_id: int) -> FlowPlan:
        """Flow ``flow_id``, enabled or not (a re-run names one)."""
        try:
            return self._by_id[flow_id]
        except KeyError:
            raise RecordNotFound(f"no flow with id {flow_id}") from None

    def pinned(self, plan: FlowPlan, version: int, rules: Mapping[str, Any]) -> FlowPlan:
        """``plan`` with mapping ``version`` (a re-run's choice) in place of its own."""
        return replace(
            plan, mapping_version=version, mapping=self.compiled(plan.mapping_id, version, rules)
        )

    def compiled(self, mapping_id: int, version: int, rules: Mapping[str, Any]) -> CompiledMapping:
        key = (mapping_id, version)
        found = self._mappings.get(key)
        if found is None:
            if len(self._mappings) >= MAPPING_CACHE_SIZE:
                self._mappings.pop(next(iter(self._mappings)))
            found = self._mappings[key] = compile_mapping(rules)
        return found

    def _plan(self, row: FlowRow) -> FlowPlan:
        problem = row.problem
        target = _target(row.target)
        if isinstance(target, KafkaTarget):
            # The same rules the API applies on write; a row from before (or by hand) is refused.
            found = kafka_target_problems(row.target, self.reserved)
            if found:
                problem = problem or ConfigurationError(f"flow {row.flow_id}: {'; '.join(found)}")
        auth: dict[str, str] = {}
        hide: tuple[str, ...] = ()
        if row.credential is not None and problem is None:
            try:
                auth = auth_headers(row.credential)
            except SynapseOpsError as exc:
                problem = exc
            hide = (row.credential.header_name,) if row.credential.header_name else ()
        mapping = None
        if row.rules is not None and row.mapping_version is not None and problem is None:
            try:
                mapping = self.compiled(row.mapping_id, row.mapping_version, row.rules)
            except SynapseOpsError as exc:
                problem = exc
        return FlowPlan(
            flow_id=row.flow_id,
            mapping_id=row.mapping_id,
            pinned_version=row.pinned_version,
            mapping_version=row.mapping_version,
            mapping=mapping,
            target=target,
            target_connector_id=int(row.target["connector_id"]),
            auth=auth,
            hide_headers=hide,
            problem=problem,
        )


def _target(row: Mapping[str, Any]) -> Target | KafkaTarget:
    """The target of a flow's target endpoint (HTTP, or a topic for a ``kafka`` connector)."""
    config = row["config"]
    if row["protocol"] == "kafka":
        return kafka_target(str(row["connector"]), row)
    return Target(
        connector=str(row["connector"]),
        base_url=str(row["base_url"]),
        path=str(row["path"]),
        method=str(row["method"]),
        timeout_s=float(config.get("timeout_s", 10.0)),
        # Host and hop-by-hop headers are refused on write; a row from before is cleaned.
        headers={
            str(k): str(v)
            for k, v in (config.get("headers") or {}).items()
            if not is_forbidden_header(str(k))
        },
    )
