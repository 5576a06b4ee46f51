"""IngestionJobs: one tracked run (a poll cycle, a bulk upload) with its counts and progress.

A running job is updated as it goes (:func:`progress`); its watchers (the SSE route) read it
again. ``errors`` keeps the first :data:`MAX_ERRORS` problems (line number and reason).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy
from sqlalchemy import func, select

from sinks.aggregation.tables import jobs
from sinks.db import database_errors
from synapseops.errors import RecordNotFound

MAX_ERRORS = 1000


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
