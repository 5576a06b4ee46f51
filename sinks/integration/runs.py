"""Runs: every delivery attempt of a flow, recorded so a person can debug and re-run it.

One row of ``runs`` per attempt (UNIQUE flow/source event/attempt: a record handled again after
a crash writes the same row). :func:`start_run` writes it ``running`` before the target is
called; :func:`finish_run` writes the outcome, the duration, the request and the response.

- Everything a Run shows passes :mod:`synapseops.redaction` first: header values of
  secret-bearing names (and the credential's own header name) become ``**hidden**``, every
  other header value, both bodies (every JSON string, or the text), the error and the failed
  rule are scrubbed of every known secret: a target echoing the token back in a 4xx body or a
  header leaves nothing in the row. The raw *source* event is kept exactly (a re-run needs
  its bytes); it is what came in, never what the platform sent.
- JSON is written as text cast to ``jsonb`` in SQL, so money and ids above 2^53 are stored
  digit for digit (the driver's encoder would refuse Decimals or round through floats).
- A body above :data:`BODY_CAP_BYTES` is stored apart in ``run_bodies``; the row keeps its
  size and the reference (``body_ref`` / ``response_body_ref``).
- The raw source event (bytes exactly as received) is kept in ``run_bodies`` once per flow and
  event; ``runs.request -> 'source'`` names it (``body_ref``, connector, endpoint, entity key,
  event type, trace). A re-run reads it back with :func:`load_source`.

Blocking (SQLAlchemy + psycopg2): async callers run these in an executor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import Text, cast, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sinks.db import database_errors
from sinks.integration.tables import DUPLICATE, RUNNING, SUCCEEDED, run_bodies, runs
from streams.mapping import dump_output, load_payload
from synapseops.errors import SynapseOpsError
from synapseops.redaction import scrub, scrub_bytes, scrub_document, scrub_headers

BODY_CAP_BYTES = 16 * 1024
ERROR_CAP_CHARS = 4000


@dataclass(frozen=True)
class SourceRecord:
    """The raw source event of a run, as kept for re-runs."""

    event_id: str
    connector: str
    endpoint: str
    body: bytes
    content_type: str | None = None
    entity_key: str | None = None
    event_type: str | None = None
    traceparent: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class RecordedResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


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


def _jsonb(document: Any) -> Any:
    """A bound JSON text cast to jsonb in SQL: exact numbers, no driver encoder involved."""
    return cast(literal(dump_output(document).decode(), Text), JSONB)


def _body_document(body: bytes) -> Any:
    """How a capped body is shown in the row: JSON when it is JSON, else text; scrubbed
    after decoding, so a secret spelled with JSON escapes is found as well."""
    if not body:
        return None
    try:
        return scrub_document(load_payload(body))
    except SynapseOpsError:
        return scrub(body.decode("utf-8", "replace"))


def _store_body(conn: sqlalchemy.Connection, body: bytes, content_type: str | None) -> int:
    row_id = conn.execute(
        run_bodies.insert()
        .values(content=body, content_type=content_type)
        .returning(run_bodies.c.id)
    ).scalar_one()
    return int(row_id)


def _capped(
    conn: sqlalchemy.Connection, body: bytes, content_type: str | None
) -> tuple[Any, int | None]:
    """(what the row shows, the run_bodies id when the body is stored apart, scrubbed)."""
    if len(body) > BODY_CAP_BYTES:
        return None, _store_body(conn, scrub_bytes(body), content_type)
    return _body_document(body), None


def _source_ref(conn: sqlalchemy.Connection, flow_id: int, source: SourceRecord) -> dict[str, Any]:
    # Every attempt of one flow and event shares the one stored copy of the raw source.
    found = conn.execute(
        select(runs.c.request["source"])
        .where(
            runs.c.flow_id == flow_id,
            runs.c.source_event_id == source.event_id,
            runs.c.request.has_key("source"),
        )
        .limit(1)
    ).scalar_one_or_none()
    if isinstance(found, dict) and found.get("body_ref") is not None:
        return found
    return {
        "body_ref": _store_body(conn, source.body, source.content_type),
        "connector": source.connector,
        "endpoint": source.endpoint,
        "entity_key": source.entity_key,
        "event_type": source.event_type,
        "traceparent": source.traceparent,
        "content_type": source.content_type,
        "bytes": len(source.body),
    }


def start_run(
    engine: sqlalchemy.Engine,
    *,
    flow_id: int,
    source: SourceRecord,
    attempt: int,
    mapping_version: int | None,
    trace_id: str | None,
    rerun_of: int | None = None,
) -> int:
    """Write attempt ``attempt`` of (flow, event) as ``running``; its run id.

    The same attempt written again (a record handled again after a crash) resets that row.
    """
    with database_errors("runs: start"), engine.begin() as conn:
        document = {"source": _source_ref(conn, flow_id, source)}
        values = {
            "flow_id": flow_id,
            "source_event_id": source.event_id,
            "attempt": attempt,
            "status": RUNNING,
            "mapping_version": mapping_version,
            "request": _jsonb(document),
            "trace_id": trace_id,
            "rerun_of": rerun_of,
        }
        inserting = pg_insert(runs).values(**values)
        statement = inserting.on_conflict_do_update(
            constraint="uq_runs_flow_event_attempt",
            set_={
                "status": RUNNING,
                "started_at": func.now(),
                "finished_at": None,
                "duration_ms": None,
                "mapping_version": mapping_version,
                "request": inserting.excluded.request,
                "response_status": None,
                "response": None,
                "error": None,
                "error_class": None,
                "failed_rule": None,
                "body_ref": None,
                "response_body_ref": None,
                "rerun_of": rerun_of,
                "trace_id": trace_id,
            },
        ).returning(runs.c.id)
        return int(conn.execute(statement).scalar_one())


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
    """Write the outcome of run ``run_id``: status, duration, the redacted request and the
    response (bodies above the cap apart), the error and the failed mapping rule."""
    with database_errors("runs: finish"), engine.begin() as conn:
        values: dict[str, Any] = {
            "status": status,
            "finished_at": func.now(),
            "duration_ms": duration_ms,
            "failed_rule": scrub(failed_rule) if failed_rule is not None else None,
        }
        if error is not None:
            values["error"] = scrub(str(error))[:ERROR_CAP_CHARS]
            values["error_class"] = type(error).__name__
        if request is not None:
            shown, ref = _capped(conn, request.body, request.headers.get("Content-Type"))
            source = conn.execute(
                select(runs.c.request["source"]).where(runs.c.id == run_id)
            ).scalar_one_or_none()
            document = {
                "method": request.method,
                "headers": scrub_headers(request.headers, also=hide_headers),
                "url": scrub(request.url),
                "body": shown,
                "body_bytes": len(request.body),
                "source": source,
            }
            values["request"] = _jsonb(document)
            values["body_ref"] = ref
        if response is not None:
            shown, ref = _capped(conn, response.body, response.headers.get("content-type"))
            values["response_status"] = response.status
            values["response"] = _jsonb(
                {
                    "headers": scrub_headers(response.headers, also=hide_headers),
                    "body": shown,
                    "body_bytes": len(response.body),
                }
            )
            values["response_body_ref"] = ref
        statement = update(runs).where(runs.c.id == run_id)
        if status != SUCCEEDED:
            conn.execute(statement.values(**values))
            return
        try:
            with conn.begin_nested():
                conn.execute(statement.values(**values))
        except sqlalchemy.exc.IntegrityError:
            # Another attempt of this event succeeded first (uq_runs_one_success): the target
            # answered this one from its Idempotency-Key store. One delivery, one succeeded Run.
            values["status"] = DUPLICATE
            values["error"] = "another attempt of this event had already been delivered"
            conn.execute(statement.values(**values))


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


def load_source(engine: sqlalchemy.Engine, run: RunRow) -> SourceRecord | None:
    """The raw source event of ``run`` (None when the run kept none)."""
    if run.source is None or run.source.get("body_ref") is None:
        return None
    with database_errors("runs: read source"), engine.connect() as conn:
        body = conn.execute(
            select(run_bodies.c.content).where(run_bodies.c.id == int(run.source["body_ref"]))
        ).scalar_one_or_none()
    if body is None:
        return None
    return SourceRecord(
        event_id=run.source_event_id,
        connector=str(run.source.get("connector") or ""),
        endpoint=str(run.source.get("endpoint") or ""),
        body=bytes(body),
        content_type=run.source.get("content_type"),
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
