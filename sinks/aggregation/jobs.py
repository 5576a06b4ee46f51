"""IngestionJobs: one tracked run (a poll cycle, a bulk upload) with its counts and progress.

A running job is updated as it goes (:func:`progress`); its watchers (the SSE route) read it
again. ``errors`` keeps the first :data:`MAX_ERRORS` problems (line number and reason).

The same progress is counted on the ``/metrics`` of the process running the job (the API for
bulk uploads, the worker for poll cycles), by job kind — never by job or source, so the
labels stay bounded: ``synapseops_ingestion_jobs_started_total{kind}``,
``..._jobs_finished_total{kind,state}``, ``..._jobs_running{kind}``,
``synapseops_ingestion_job_records_total{kind,outcome}`` (``in``, ``out``, ``failed``) and
``synapseops_ingestion_job_bytes_total{kind}``. :func:`progress` takes counts so far, so each
call adds what grew since the last one (a job this process did not start, one running
before a restart, is not counted: its kind is not known here without a query).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy
from prometheus_client import Counter, Gauge
from sqlalchemy import func, select

from sinks.aggregation.tables import jobs
from sinks.db import database_errors
from synapseops.errors import RecordNotFound

MAX_ERRORS = 1000

JOBS_STARTED = Counter(
    "synapseops_ingestion_jobs_started_total", "IngestionJobs started, by kind", ["kind"]
)
JOBS_FINISHED = Counter(
    "synapseops_ingestion_jobs_finished_total",
    "IngestionJobs finished, by kind and final state",
    ["kind", "state"],
)
JOBS_RUNNING = Gauge(
    "synapseops_ingestion_jobs_running", "IngestionJobs running in this process", ["kind"]
)
JOB_RECORDS = Counter(
    "synapseops_ingestion_job_records_total",
    "Records of IngestionJobs by kind and outcome (in: read, out: published, failed)",
    ["kind", "outcome"],
)
JOB_BYTES = Counter(
    "synapseops_ingestion_job_bytes_total", "Bytes IngestionJobs read, by kind", ["kind"]
)


@dataclass
class _Counted:
    """What this process has counted of one running job so far."""

    kind: str
    records: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0, "failed": 0})
    bytes_done: int = 0


_counted: dict[uuid.UUID, _Counted] = {}
_counted_lock = threading.Lock()  # start_job and progress run in the API's worker threads


def _count_start(job_id: uuid.UUID, kind: str) -> None:
    with _counted_lock:
        _counted[job_id] = _Counted(kind)
    JOBS_STARTED.labels(kind).inc()
    JOBS_RUNNING.labels(kind).inc()


def _count_progress(
    job_id: uuid.UUID, records: dict[str, int], bytes_done: int, state: str | None
) -> None:
    with _counted_lock:
        counted = _counted.get(job_id)
        if counted is None:
            return
        grown = {outcome: records[outcome] - counted.records[outcome] for outcome in records}
        more_bytes = bytes_done - counted.bytes_done
        counted.records, counted.bytes_done = dict(records), bytes_done
        if state is not None:
            del _counted[job_id]
    for outcome, count in grown.items():
        if count > 0:
            JOB_RECORDS.labels(counted.kind, outcome).inc(count)
    if more_bytes > 0:
        JOB_BYTES.labels(counted.kind).inc(more_bytes)
    if state is not None:
        JOBS_FINISHED.labels(counted.kind, state).inc()
        JOBS_RUNNING.labels(counted.kind).dec()


def start_job(
    engine: sqlalchemy.Engine, source: str, kind: str, bytes_total: int | None = None
) -> uuid.UUID:
    job_id = uuid.uuid4()
    with database_errors("starting an ingestion job"), engine.begin() as conn:
        conn.execute(
            jobs.insert().values(
                id=job_id, source=source, kind=kind, state="running", bytes_total=bytes_total
            )
        )
    _count_start(job_id, kind)
    return job_id


def progress(
    engine: sqlalchemy.Engine,
    job_id: uuid.UUID,
    *,
    records_in: int,
    records_out: int,
    records_failed: int,
    bytes_done: int,
    errors: Sequence[dict[str, Any]] = (),
    state: str | None = None,
) -> None:
    """Counts so far (absolute), the errors so far (capped), and the final state when done."""
    values: dict[str, Any] = {
        "records_in": records_in,
        "records_out": records_out,
        "records_failed": records_failed,
        "bytes_done": bytes_done,
        "errors": list(errors[:MAX_ERRORS]),
        "updated_at": func.now(),
    }
    if state is not None:
        values |= {"state": state, "finished_at": func.now()}
    with database_errors("recording job progress"), engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))
    records = {"in": records_in, "out": records_out, "failed": records_failed}
    _count_progress(job_id, records, bytes_done, state)


def get_job(engine: sqlalchemy.Engine, job_id: uuid.UUID) -> dict[str, Any]:
    with database_errors("reading an ingestion job"), engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
    if row is None:
        raise RecordNotFound(f"no ingestion job {job_id}")
    return dict(row._mapping)


def list_jobs(
    engine: sqlalchemy.Engine, source: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    statement = select(jobs).order_by(jobs.c.started_at.desc()).limit(limit)
    if source is not None:
        statement = statement.where(jobs.c.source == source)
    with database_errors("listing ingestion jobs"), engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(statement)]
