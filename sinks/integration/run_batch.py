"""Runs of a whole batch at once: one transaction starts them, one finishes them.

The delivery pipeline hands a batch of (flow, source event) pairs — each pair at most once per
call — to :func:`start_runs` on a connection in an open transaction: one read finds what is
already known of every pair (delivered? highest attempt? the kept source), one insert keeps the
raw sources not kept yet, one upsert writes the attempts ``running``. After the targets
answered, :func:`finish_runs` writes every outcome in one ``UPDATE … FROM (VALUES …)``.

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
from sqlalchemy import (
    BigInteger,
    Integer,
    Text,
    and_,
    case,
    cast,
    column,
    exists,
    func,
    literal,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sinks.db import database_errors
from sinks.integration.run_documents import (
    ERROR_CAP_CHARS,
    RecordedRequest,
    RecordedResponse,
    capped_document,
    json_text,
    request_document,
    response_document,
)
from sinks.integration.tables import DUPLICATE, RUNNING, SUCCEEDED, run_bodies, runs
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
    known = {
        (int(row.flow_id), str(row.source_event_id)): row
        for row in conn.execute(
            select(
                runs.c.flow_id,
                runs.c.source_event_id,
                func.bool_or(runs.c.status == SUCCEEDED).label("delivered"),
                func.max(runs.c.attempt).label("highest"),
                func.jsonb_agg(runs.c.request["source"])
                .filter(runs.c.request.has_key("source"))
                .label("sources"),
            )
            .where(sqlalchemy.tuple_(runs.c.flow_id, runs.c.source_event_id).in_(pairs))
            .group_by(runs.c.flow_id, runs.c.source_event_id)
        )
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
    rows = []
    for _, start in todo:
        found = known.get((start.flow_id, start.event.event_id))
        attempt = start.attempt
        if start.fresh_attempt and found is not None:
            # Re-runs and replays add an attempt; a redelivered record rewrites its own.
            attempt = max(attempt, int(found.highest or 0) + 1)
        rows.append(
            {
                "flow_id": start.flow_id,
                "source_event_id": start.event.event_id,
                "attempt": max(attempt, 1),
                "status": RUNNING,
                "mapping_version": start.mapping_version,
                "request": cast(
                    literal(json_text({"source": sources[start.event.event_id, start.flow_id]})),
                    JSONB,
                ),
                "trace_id": start.trace_id,
                "rerun_of": start.rerun_of,
            }
        )
    inserting = pg_insert(runs).values(rows)
    statement = inserting.on_conflict_do_update(
        constraint="uq_runs_flow_event_attempt",
        set_={
            "status": RUNNING,
            "started_at": func.now(),
            "finished_at": None,
            "duration_ms": None,
            "mapping_version": inserting.excluded.mapping_version,
            "request": inserting.excluded.request,
            "response_status": None,
            "response": None,
            "error": None,
            "error_class": None,
            "failed_rule": None,
            "body_ref": None,
            "response_body_ref": None,
            "rerun_of": inserting.excluded.rerun_of,
            "trace_id": inserting.excluded.trace_id,
        },
    ).returning(runs.c.id, runs.c.flow_id, runs.c.source_event_id)
    ids = {(int(r.flow_id), str(r.source_event_id)): int(r.id) for r in conn.execute(statement)}
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
    statement = run_bodies.insert().returning(run_bodies.c.id, sort_by_parameter_order=True)
    params = [{"content": content, "content_type": kind} for content, kind in bodies]
    return [int(row_id) for row_id in conn.execute(statement, params).scalars()]


def finish_runs(engine: sqlalchemy.Engine, finishes: Sequence[RunFinish]) -> None:
    """Write every outcome in one transaction (done again while a concurrent success of the
    same pair makes ``uq_runs_one_success`` refuse it, see the module's docstring)."""
    if not finishes:
        return
    for attempt in range(FINISH_ATTEMPTS):
        try:
            with database_errors("runs: finish"), engine.begin() as conn:
                _finish(conn, finishes)
            return
        except Exception as exc:
            cause = exc.__cause__
            if attempt + 1 < FINISH_ATTEMPTS and isinstance(cause, sa_exc.IntegrityError):
                continue
            raise


_VALUES = (
    ("id", BigInteger),
    ("status", Text),
    ("duration_ms", Integer),
    ("failed_rule", Text),
    ("error", Text),
    ("error_class", Text),
    ("request", Text),
    ("body_ref", BigInteger),
    ("response_status", Integer),
    ("response", Text),
    ("response_body_ref", BigInteger),
)


def _finish(conn: sqlalchemy.Connection, finishes: Sequence[RunFinish]) -> None:
    apart: list[tuple[bytes, str | None]] = []
    shown: list[tuple[Any, Any]] = []
    for finish in finishes:
        request = capped_document(finish.request.body) if finish.request else None
        response = capped_document(finish.response.body) if finish.response else None
        for part, recorded, kind in (
            (request, finish.request, "Content-Type"),
            (response, finish.response, "content-type"),
        ):
            if part is not None and part.apart is not None and recorded is not None:
                apart.append((part.apart, recorded.headers.get(kind)))
        shown.append((request, response))
    refs = iter(store_bodies(conn, apart))
    data = []
    for finish, (request, response) in zip(finishes, shown, strict=True):
        request_ref = next(refs) if request is not None and request.apart is not None else None
        response_ref = next(refs) if response is not None and response.apart is not None else None
        error = finish.error
        data.append(
            (
                finish.run_id,
                finish.status,
                finish.duration_ms,
                scrub(finish.failed_rule) if finish.failed_rule is not None else None,
                scrub(str(error))[:ERROR_CAP_CHARS] if error is not None else None,
                type(error).__name__ if error is not None else None,
                json_text(request_document(finish.request, request, finish))
                if finish.request is not None and request is not None
                else None,
                request_ref,
                finish.response.status if finish.response is not None else None,
                json_text(response_document(finish.response, response, finish))
                if finish.response is not None and response is not None
                else None,
                response_ref,
            )
        )
    values = sqlalchemy.values(*(column(name, kind) for name, kind in _VALUES), name="v")
    v = values.data(data)
    other = runs.alias("other")
    # Another attempt of the same pair already succeeded: this one is the duplicate.
    raced = and_(
        v.c.status == SUCCEEDED,
        exists().where(
            other.c.flow_id == runs.c.flow_id,
            other.c.source_event_id == runs.c.source_event_id,
            other.c.status == SUCCEEDED,
            other.c.id != runs.c.id,
        ),
    )
    statement = (
        sqlalchemy.update(runs)
        .where(runs.c.id == cast(v.c.id, BigInteger))
        .values(
            status=case((raced, DUPLICATE), else_=v.c.status),
            finished_at=func.now(),
            duration_ms=cast(v.c.duration_ms, Integer),
            failed_rule=v.c.failed_rule,
            error=case((raced, DUPLICATE_NOTE), else_=v.c.error),
            error_class=v.c.error_class,
            request=func.coalesce(cast(v.c.request, JSONB), runs.c.request),
            body_ref=cast(v.c.body_ref, BigInteger),
            response_status=cast(v.c.response_status, Integer),
            response=cast(v.c.response, JSONB),
            response_body_ref=cast(v.c.response_body_ref, BigInteger),
        )
    )
    conn.execute(statement)
