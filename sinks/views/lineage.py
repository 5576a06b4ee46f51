"""Everything one trace touched, from its raw input to its effects (read-only).

Ingress stamps a W3C ``traceparent`` on every record and every stored row keeps its trace id
(docs/ARCHITECTURE.md, road step 2), so one id finds, across services:

- the **raw inputs**: Stripe events as received (``payment_events.raw`` + HTTP headers),
  integration source events (the bytes a run kept in ``run_bodies``), generic events
  (``inbound_events``);
- the **steps**: every integration run (attempts, re-runs), every finance attempt of the
  trace's settlements, every dead letter on the way;
- the **effects**: an ERP order (a succeeded run's response), a ledger entry (a settled
  settlement's finance reference).

:func:`trace` answers the rows; the API and the console shape them. Blocking I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy
from sqlalchemy import select

from sinks.db import database_errors
from sinks.dead_letters.tables import dead_letters
from sinks.event_log.tables import inbound_events
from sinks.integration.tables import flows, run_bodies, runs
from sinks.payments.tables import payment_events, settlement_attempts, settlements

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_ROWS = 200

_DEAD_LETTER_COLUMNS = [c for c in dead_letters.c if c.name not in ("key", "value")]
_RUN_COLUMNS = [c for c in runs.c if c.name not in ("request", "response")]


@dataclass
class Trace:
    trace_id: str
    inbound_events: list[dict[str, Any]] = field(default_factory=list)
    payment_events: list[dict[str, Any]] = field(default_factory=list)
    source_events: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    settlements: list[dict[str, Any]] = field(default_factory=list)
    settlement_attempts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.inbound_events or self.payment_events or self.runs or self.settlements
            or self.dead_letters
        )  # fmt: skip


def _rows(conn: sqlalchemy.Connection, statement: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(statement.limit(MAX_ROWS)).mappings()]


def trace(engine: sqlalchemy.Engine, trace_id: str) -> Trace:
    """The rows of one trace, each list oldest first (an unknown id: an empty trace)."""
    found = Trace(trace_id)
    if not TRACE_ID.match(trace_id):
        return found
    with database_errors("lineage"), engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            found.inbound_events = _rows(
                conn,
                select(inbound_events)
                .where(inbound_events.c.trace_id == trace_id)
                .order_by(inbound_events.c.received_at),
            )
            found.payment_events = _rows(
                conn,
                select(payment_events)
                .where(payment_events.c.trace_id == trace_id)
                .order_by(payment_events.c.received_at, payment_events.c.id),
            )
            found.runs = _rows(
                conn,
                select(*_RUN_COLUMNS, runs.c.request["source"].label("source"), flows.c.name)
                .select_from(runs.join(flows, flows.c.id == runs.c.flow_id))
                .where(runs.c.trace_id == trace_id)
                .order_by(runs.c.id),
            )
            found.source_events = _source_events(conn, found.runs)
            settlement_ids = {row["settlement_id"] for row in found.payment_events}
            by_trace = settlements.c.trace_id == trace_id
            clause = (
                by_trace | settlements.c.settlement_id.in_(settlement_ids)
                if settlement_ids
                else by_trace
            )
            found.settlements = _rows(
                conn, select(settlements).where(clause).order_by(settlements.c.created_at)
            )
            ids = [row["settlement_id"] for row in found.settlements]
            if ids:
                found.settlement_attempts = _rows(
                    conn,
                    select(settlement_attempts)
                    .where(settlement_attempts.c.settlement_id.in_(ids))
                    .order_by(settlement_attempts.c.started_at, settlement_attempts.c.id),
                )
            found.dead_letters = _rows(
                conn,
                select(*_DEAD_LETTER_COLUMNS)
                .where(dead_letters.c.trace_id == trace_id)
                .order_by(dead_letters.c.id),
            )
    return found


def _source_events(
    conn: sqlalchemy.Connection, run_rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The raw source event of the runs, once per stored copy."""
    seen: dict[int, dict[str, Any]] = {}
    for run in run_rows:
        source = run.get("source")
        if not isinstance(source, dict) or source.get("body_ref") is None:
            continue
        ref = source["body_ref"]
        if int(ref) in seen:
            continue
        content = conn.execute(
            select(run_bodies.c.content, run_bodies.c.content_type).where(
                run_bodies.c.id == int(ref)
            )
        ).first()
        if content is None:
            continue
        seen[int(ref)] = {
            "body_ref": int(ref),
            "connector": source.get("connector"),
            "endpoint": source.get("endpoint"),
            "event_type": source.get("event_type"),
            "source_event_id": run["source_event_id"],
            "first_run_id": run["id"],
            "started_at": run["started_at"],
            "content_type": content.content_type,
            "body": bytes(content.content),
        }
    return list(seen.values())
