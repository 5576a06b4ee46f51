"""``/api/v1/aggregation``: the canonical schema with its versions, each logic's field
mapping, ingestion health per source, and ingestion jobs (with live progress over SSE)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.encoders import jsonable_encoder
from starlette.responses import StreamingResponse

from api.deps import EngineDep
from schemas import CANONICAL_EVENT
from schemas.store import LocalSchemaStore
from sinks.aggregation import sources as source_store
from sinks.aggregation.health import minutes_of, source_health
from sinks.aggregation.jobs import get_job, list_jobs
from streams.aggregation.transform import LOGIC
from synapseops.errors import RecordNotFound

router = APIRouter(prefix="/aggregation", tags=["aggregation: schema, health, jobs"])
# How often a job's SSE stream reads the job again.
SSE_INTERVAL_S = 0.5


def _versions() -> list[tuple[int, dict[str, Any]]]:
    return LocalSchemaStore().versions(CANONICAL_EVENT)


@router.get("/schema")
def canonical_schema() -> dict[str, Any]:
    """The newest canonical schema and the list of its versions."""
    versions = _versions()
    newest_id, newest = versions[-1]
    return {
        "subject": CANONICAL_EVENT,
        "version": len(versions),
        "id": newest_id,
        "schema": newest,
        "versions": [{"version": n + 1, "id": sid} for n, (sid, _) in enumerate(versions)],
    }


@router.get("/schema/versions/{version}")
def schema_version(version: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    versions = _versions()
    if version > len(versions):
        raise RecordNotFound(f"{CANONICAL_EVENT} has {len(versions)} versions")
    schema_id, schema = versions[version - 1]
    return {"subject": CANONICAL_EVENT, "version": version, "id": schema_id, "schema": schema}


@router.get("/sources/{name}/mapping")
def field_mapping(name: str, engine: EngineDep) -> dict[str, Any]:
    """How the source's fields land in the canonical schema (its logic's mapping)."""
    source = source_store.get_source(engine, name)
    logic = LOGIC[source["logic"]]
    return {
        "source": name,
        "logic": logic.NAME,
        "version": logic.VERSION,
        "fields": logic.FIELD_MAPPING,
    }


@router.get("/health")
def health(
    engine: EngineDep,
    minutes: Annotated[int, Query(ge=1, le=1440)] = 60,
    high_latency_s: Annotated[float, Query(gt=0)] = 60.0,
) -> Any:
    """Per source over the window: events, latency p50/p99 (s), errors, flagged."""
    return jsonable_encoder(source_health(engine, minutes, high_latency_s))


@router.get("/health/{source}/minutes")
def health_minutes(
    source: str, engine: EngineDep, minutes: Annotated[int, Query(ge=1, le=1440)] = 60
) -> Any:
    return jsonable_encoder(minutes_of(engine, source, minutes))


@router.get("/jobs")
def jobs(engine: EngineDep, source: str | None = None) -> Any:
    return jsonable_encoder([_with_eta(job) for job in list_jobs(engine, source)])


@router.get("/jobs/{job_id}")
def job(job_id: uuid.UUID, engine: EngineDep) -> Any:
    return jsonable_encoder(_with_eta(get_job(engine, job_id)))


def _with_eta(job: dict[str, Any]) -> dict[str, Any]:
    """Progress (0–1, by bytes when the size is known) and the seconds left at this pace."""
    total, done = job.get("bytes_total"), job.get("bytes_done") or 0
    fraction = (done / total) if total else None
    eta = None
    if fraction and job["state"] == "running":
        elapsed = (job["updated_at"] - job["started_at"]).total_seconds()
        eta = max(0.0, elapsed / fraction - elapsed)
    return job | {"progress": fraction, "eta_s": eta}


@router.get("/jobs/{job_id}/events")
async def job_events(job_id: uuid.UUID, engine: EngineDep) -> StreamingResponse:
    """Server-Sent Events: the job as it changes (``event: progress``), then ``event: done``."""
    first = await asyncio.to_thread(get_job, engine, job_id)  # 404 before the stream opens

    async def stream() -> AsyncIterator[bytes]:
        current: dict[str, Any] | None = first
        last = None
        while current is not None:
            data = json.dumps(jsonable_encoder(_with_eta(current)))
            if data != last:
                kind = "progress" if current["state"] == "running" else "done"
                yield f"event: {kind}\ndata: {data}\n\n".encode()
                last = data
            if current["state"] != "running":
                return
            await asyncio.sleep(SSE_INTERVAL_S)
            current = await asyncio.to_thread(get_job, engine, job_id)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
