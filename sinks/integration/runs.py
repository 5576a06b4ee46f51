"""Runs: every delivery attempt of a flow, recorded so a person can debug and re-run it.

One row of ``runs`` per attempt (UNIQUE flow/source event/attempt: a record handled again after
a crash writes the same row), written ``running`` before the target is called and finished with
the outcome, the duration, the request and the response. The delivery pipeline writes a whole
batch at once (:mod:`sinks.integration.run_batch`); :func:`start_run` and :func:`finish_run`
are that, for one. What a Run shows is redacted and capped (:mod:`sinks.integration.
run_documents`). The raw source event (bytes exactly as received) is kept in ``run_bodies``
once per flow and event; ``runs.request -> 'source'`` names it (``body_ref``, connector,
endpoint, entity key, event type, trace). A re-run reads it back with :func:`load_source`.

Blocking (SQLAlchemy + psycopg2): async callers run these in an executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import func, select

from sinks.db import database_errors
from sinks.integration.run_batch import RunFinish, RunStart, finish_runs, start_runs
from sinks.integration.run_documents import RecordedRequest, RecordedResponse
from sinks.integration.tables import SUCCEEDED, run_bodies, runs
from streams.integration.delivery import SourceEvent
from synapseops import headers as kh

__all__ = [
    "RecordedRequest",
    "RecordedResponse",
    "RunRow",
    "SourceEvent",
    "finish_run",
    "get_run",
    "load_body",
    "load_source",
    "next_attempt",
    "start_run",
    "succeeded_run",
]


@dataclass(frozen=True)
class RunRow:
    id: int
    flow_id: int
    source_event_id: str
    attempt: int
    status: str
    mapping_version: int | None
    failed_rule: str | None
    error: str | None
    source: dict[str, Any] | None


def start_run(
    engine: sqlalchemy.Engine,
    *,
    flow_id: int,
    source: SourceEvent,
    attempt: int,
    mapping_version: int | None,
    trace_id: str | None,
    rerun_of: int | None = None,
) -> int:
    """Write attempt ``attempt`` of (flow, event) as ``running``; its run id (a batch of one
    of :func:`~sinks.integration.run_batch.start_runs`, even when already delivered).

    The same attempt written again (a record handled again after a crash) resets that row.
    """
    start = RunStart(flow_id, source, attempt, mapping_version, trace_id, rerun_of=rerun_of)
    with database_errors("runs: start"), engine.begin() as conn:
        started = start_runs(conn, [start], delivered_too=True)[0]
    assert started is not None  # delivered_too: always started
    return started.run_id


def finish_run(
    engine: sqlalchemy.Engine,
    run_id: int,
    *,
    status: str,
    duration_ms: int,
    request: RecordedRequest | None = None,
    response: RecordedResponse | None = None,
    error: BaseException | None = None,
    failed_rule: str | None = None,
    hide_headers: tuple[str, ...] = (),
) -> None:
    """Write the outcome of run ``run_id`` (a batch of one of
    :func:`~sinks.integration.run_batch.finish_runs`)."""
    with database_errors("runs: read"), engine.connect() as conn:
        source = conn.execute(
            select(runs.c.request["source"]).where(runs.c.id == run_id)
        ).scalar_one_or_none()
    finish = RunFinish(
        run_id,
        status,
        duration_ms,
        source=source if isinstance(source, dict) else None,
        request=request,
        response=response,
        error=error,
        failed_rule=failed_rule,
        hide_headers=hide_headers,
    )
    finish_runs(engine, [finish])


def succeeded_run(engine: sqlalchemy.Engine, flow_id: int, event_id: str) -> int | None:
    """The id of a succeeded run of (flow, event), if any: the event was delivered."""
    with database_errors("runs: lookup"), engine.connect() as conn:
        found = conn.execute(
            select(runs.c.id)
            .where(
                runs.c.flow_id == flow_id,
                runs.c.source_event_id == event_id,
                runs.c.status == SUCCEEDED,
            )
            .limit(1)
        ).scalar_one_or_none()
    return int(found) if found is not None else None


def next_attempt(engine: sqlalchemy.Engine, flow_id: int, event_id: str) -> int:
    """One past the highest attempt recorded for (flow, event); 1 for a new one."""
    with database_errors("runs: lookup"), engine.connect() as conn:
        highest = conn.execute(
            select(func.max(runs.c.attempt)).where(
                runs.c.flow_id == flow_id, runs.c.source_event_id == event_id
            )
        ).scalar_one_or_none()
    return int(highest or 0) + 1


def get_run(engine: sqlalchemy.Engine, run_id: int) -> RunRow | None:
    with database_errors("runs: read"), engine.connect() as conn:
        row = (
            conn.execute(
                select(
                    runs.c.id,
                    runs.c.flow_id,
                    runs.c.source_event_id,
                    runs.c.attempt,
                    runs.c.status,
                    runs.c.mapping_version,
                    runs.c.failed_rule,
                    runs.c.error,
                    runs.c.request["source"].label("source"),
                ).where(runs.c.id == run_id)
            )
            .mappings()
            .one_or_none()
        )
    if row is None:
        return None
    source = row["source"]
    return RunRow(
        id=int(row["id"]),
        flow_id=int(row["flow_id"]),
        source_event_id=str(row["source_event_id"]),
        attempt=int(row["attempt"]),
        status=str(row["status"]),
        mapping_version=row["mapping_version"],
        failed_rule=row["failed_rule"],
        error=row["error"],
        source=source if isinstance(source, dict) else None,
    )


def load_source(engine: sqlalchemy.Engine, run: RunRow) -> SourceEvent | None:
    """The raw source event of ``run`` (None when the run kept none)."""
    if run.source is None or run.source.get("body_ref") is None:
        return None
    with database_errors("runs: read source"), engine.connect() as conn:
        body = conn.execute(
            select(run_bodies.c.content).where(run_bodies.c.id == int(run.source["body_ref"]))
        ).scalar_one_or_none()
    if body is None:
        return None
    content_type = run.source.get("content_type")
    return SourceEvent(
        event_id=run.source_event_id,
        connector=str(run.source.get("connector") or ""),
        endpoint=str(run.source.get("endpoint") or ""),
        body=bytes(body),
        headers={kh.CONTENT_TYPE: content_type} if content_type else {},
        entity_key=run.source.get("entity_key"),
        event_type=run.source.get("event_type"),
        traceparent=run.source.get("traceparent"),
    )


def load_body(engine: sqlalchemy.Engine, body_ref: int) -> bytes | None:
    """A body stored apart (``body_ref`` / ``response_body_ref`` of a run)."""
    with database_errors("runs: read body"), engine.connect() as conn:
        found = conn.execute(
            select(run_bodies.c.content).where(run_bodies.c.id == body_ref)
        ).scalar_one_or_none()
    return bytes(found) if found is not None else None
