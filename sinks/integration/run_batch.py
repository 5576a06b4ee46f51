"""Runs of a whole batch at once: one transaction starts them, one finishes them.

The delivery pipeline hands a batch of (flow, source event) pairs — each pair at most once per
call — to :func:`start_runs` on a connection in an open transaction: one read finds what is
already known of every pair (delivered? highest attempt? the kept source), one insert keeps the
raw sources not kept yet, one upsert writes the attempts ``running``. After the targets
answered, :func:`finish_runs` writes every outcome in one ``UPDATE … FROM (VALUES …)``, in
autocommit (no ``BEGIN``/``COMMIT`` round trips) unless a body is kept apart with it. Each is
one multi-row statement of driver SQL (:mod:`sinks.integration.run_sql`): no statement
compiled per batch, no bind object per value.

One succeeded Run per flow and event (``uq_runs_one_success``) without a SAVEPOINT per row:
the UPDATE itself turns a ``succeeded`` into ``duplicate`` when another attempt of that pair
already succeeded. A concurrent transaction that commits such a success between our snapshot
and our write makes the index refuse the statement; the whole finish is then done again — the
next snapshot sees that success, and the row becomes ``duplicate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import exc as sa_exc

from sinks.db import database_errors
from sinks.integration import run_sql
from sinks.integration.run_documents import (
    ERROR_CAP_CHARS,
    Capped,
    RecordedRequest,
    RecordedResponse,
    capped_document,
    json_text,
    request_document,
    response_document,
)
from streams.integration.delivery import SourceEvent
from synapseops.redaction import scrub

# How often a finish is done again after a concurrent success took the pair's one success.
FINISH_ATTEMPTS = 5
DUPLICATE_NOTE = "another attempt of this event had already been delivered"


@dataclass(frozen=True)
class RunStart:
    """One attempt to write ``running``: ``attempt`` is the record's own (a redelivered record
    rewrites its row); ``fresh_attempt`` (re-runs, replays) adds one past the highest."""

    flow_id: int
    event: SourceEvent
    attempt: int
    mapping_version: int | None
    trace_id: str | None
    fresh_attempt: bool = False
    rerun_of: int | None = None


@dataclass(frozen=True)
class Started:
    """A started run: its id and the kept source (the finish writes it back into the request)."""

    run_id: int
    source: dict[str, Any]


@dataclass(frozen=True)
class RunFinish:
    run_id: int
    status: str
    duration_ms: int
    source: dict[str, Any] | None = None
    request: RecordedRequest | None = None
    response: RecordedResponse | None = None
    error: BaseException | None = None
    failed_rule: str | None = None
    hide_headers: tuple[str, ...] = ()


def start_runs(
    conn: sqlalchemy.Connection, starts: Sequence[RunStart], *, delivered_too: bool = False
) -> list[Started | None]:
    """One answer per start, in order: the started run, or ``None`` when the pair was already
    delivered (a succeeded run exists: nothing to do; ``delivered_too`` starts it anyway).
    Pairs must be distinct."""
    if not starts:
        return []
    pairs = [(start.flow_id, start.event.event_id) for start in starts]
    rows, params = run_sql.rows_of(run_sql.KNOWN_ROW, pairs)
    known = {
        (int(row.flow_id), str(row.source_event_id)): row
        for row in conn.exec_driver_sql(run_sql.KNOWN.format(rows=rows), params)
    }
    todo = [
        (index, start)
        for index, (start, pair) in enumerate(zip(starts, pairs, strict=True))
        if delivered_too or not (pair in known and known[pair].delivered)
    ]
    sources = _kept_sources(conn, [start for _, start in todo], known)
    answers: list[Started | None] = [None] * len(starts)
    if not todo:
        return answers
    values = []
    for _, start in todo:
        found = known.get((start.flow_id, start.event.event_id))
        attempt = start.attempt
        if start.fresh_attempt and found is not None:
            # Re-runs and replays add an attempt; a redelivered record rewrites its own.
            attempt = max(attempt, int(found.highest or 0) + 1)
        source = sources[start.event.event_id, start.flow_id]
        values.append(
            (
                start.flow_id,
                start.event.event_id,
                max(attempt, 1),
                start.mapping_version,
                json_text({"source": source}),
                start.trace_id,
                start.rerun_of,
            )
        )
    rows, params = run_sql.rows_of(run_sql.START_ROW, values)
    ids = {
        (int(flow_id), str(event_id)): int(run_id)
        for run_id, flow_id, event_id in conn.exec_driver_sql(
            run_sql.START.format(rows=rows), params
        )
    }
    for index, start in todo:
        pair = (start.flow_id, start.event.event_id)
        answers[index] = Started(ids[pair], sources[start.event.event_id, start.flow_id])
    return answers


def _kept_sources(
    conn: sqlalchemy.Connection, starts: Sequence[RunStart], known: dict[tuple[int, str], Any]
) -> dict[tuple[str, int], dict[str, Any]]:
    """(event id, flow id) → the reference to its kept raw source. Every attempt of one pair
    shares one stored copy; the pairs of one event in this batch share one new copy."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    new: dict[str, SourceEvent] = {}
    for start in starts:
        row = known.get((start.flow_id, start.event.event_id))
        listed = (row.sources or []) if row is not None else []
        kept = [s for s in listed if isinstance(s, dict) and s.get("body_ref")]
        if kept:
            found[start.event.event_id, start.flow_id] = kept[0]
        else:
            new.setdefault(start.event.event_id, start.event)
    events = list(new.values())
    body_ids = store_bodies(conn, [(event.body, event.content_type) for event in events])
    references = {
        event.event_id: _reference(event, ref) for event, ref in zip(events, body_ids, strict=True)
    }
    for start in starts:
        found.setdefault(
            (start.event.event_id, start.flow_id), references.get(start.event.event_id, {})
        )
    return found


def _reference(event: SourceEvent, body_ref: int) -> dict[str, Any]:
    return {
        "body_ref": body_ref,
        "connector": event.connector,
        "endpoint": event.endpoint,
        "entity_key": event.entity_key,
        "event_type": event.event_type,
        "traceparent": event.traceparent,
        "content_type": event.content_type,
        "bytes": len(event.body),
    }


def store_bodies(
    conn: sqlalchemy.Connection, bodies: Sequence[tuple[bytes, str | None]]
) -> list[int]:
    """Rows of ``run_bodies`` for ``bodies`` (content, content type), ids in the same order."""
    if not bodies:
        return []
    rows, params = run_sql.rows_of(
        run_sql.BODIES_ROW, [(content, kind, n) for n, (content, kind) in enumerate(bodies)]
    )
    # Ascending in insertion order, which is parameter order (see run_sql.BODIES).
    return sorted(
        int(row_id) for (row_id,) in conn.exec_driver_sql(run_sql.BODIES.format(rows=rows), params)
    )


def finish_runs(engine: sqlalchemy.Engine, finishes: Sequence[RunFinish]) -> None:
    """Write every outcome at once (done again while a concurrent success of the same pair
    makes ``uq_runs_one_success`` refuse it, see the module's docstring).

    The documents are built once, outside any connection. Without a body to keep apart the
    write is one ``UPDATE``: sent in autocommit, atomic on its own, with no ``BEGIN`` and
    ``COMMIT`` round trips around it; bodies kept apart and the ``UPDATE`` share a
    transaction (no kept body without the Run naming it).
    """
    if not finishes:
        return
    documents = [_documents(finish) for finish in finishes]
    apart = [body for document in documents for body in document.apart]
    for attempt in range(FINISH_ATTEMPTS):
        try:
            with database_errors("runs: finish"):
                if apart:
                    with engine.begin() as conn:
                        _finish(conn, finishes, documents, store_bodies(conn, apart))
                else:
                    with engine.connect() as conn:
                        _finish(
                            conn.execution_options(isolation_level="AUTOCOMMIT"),
                            finishes,
                            documents,
                            [],
                        )
            return
        except Exception as exc:
            cause = exc.__cause__
            if attempt + 1 < FINISH_ATTEMPTS and isinstance(cause, sa_exc.IntegrityError):
                continue
            raise


Apart = tuple[bytes, str | None]  # a body kept in run_bodies: (scrubbed bytes, content type)


@dataclass(frozen=True)
class _Documents:
    """What a finish writes of its request and response: the JSON text of each (``None``: not
    recorded) and the body of each kept apart, if any."""

    request: str | None = None
    request_apart: Apart | None = None
    response: str | None = None
    response_apart: Apart | None = None

    @property
    def apart(self) -> list[Apart]:
        return [one for one in (self.request_apart, self.response_apart) if one is not None]


def _documents(finish: RunFinish) -> _Documents:
    """The finish's documents. A body kept apart gets its ``run_bodies`` id at write time: the
    row names it (``body_ref``), the JSON keeps only its size."""
    request = response = None
    request_apart = response_apart = None
    if finish.request is not None:
        body = capped_document(finish.request.body, finish.request.document)
        request = json_text(request_document(finish.request, body, finish))
        request_apart = _apart(body, finish.request.headers.get("Content-Type"))
    if finish.response is not None:
        body = capped_document(finish.response.body)
        response = json_text(response_document(finish.response, body, finish))
        response_apart = _apart(body, finish.response.headers.get("content-type"))
    return _Documents(request, request_apart, response, response_apart)


def _apart(body: Capped, content_type: str | None) -> Apart | None:
    return None if body.apart is None else (body.apart, content_type)


def _finish(
    conn: sqlalchemy.Connection,
    finishes: Sequence[RunFinish],
    documents: Sequence[_Documents],
    body_ids: Sequence[int],
) -> None:
    refs = iter(body_ids)
    values = []
    for finish, document in zip(finishes, documents, strict=True):
        error = finish.error
        values.append(
            (
                finish.run_id,
                finish.status,
                finish.duration_ms,
                scrub(finish.failed_rule) if finish.failed_rule is not None else None,
                scrub(str(error))[:ERROR_CAP_CHARS] if error is not None else None,
                type(error).__name__ if error is not None else None,
                document.request,
                next(refs) if document.request_apart is not None else None,
                finish.response.status if finish.response is not None else None,
                document.response,
                next(refs) if document.response_apart is not None else None,
            )
        )
    rows, params = run_sql.rows_of(run_sql.FINISH_ROW, values)
    conn.exec_driver_sql(run_sql.FINISH.format(rows=rows), (DUPLICATE_NOTE, *params))
