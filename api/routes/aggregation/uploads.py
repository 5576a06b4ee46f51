"""``POST /api/v1/aggregation/sources/{name}/uploads``: a bulk upload, NDJSON or CSV,
streamed through (never held in memory), with per-line errors.

The body is read as it arrives (:mod:`streams.aggregation.bulk_lines`); every line goes
through the source's TransformationLogic at once (the same check the pipeline makes), good
lines are published to ``aggregation.raw`` in batches, bad ones are reported by number with
the reason. The upload is an IngestionJob: created when the upload starts (``GET
/aggregation/jobs?source=`` and its SSE stream follow it live), its counts and bytes written
every :data:`PROGRESS_EVERY_S`, finished with the answer. The general body cap does not
apply here (``api/main.py`` exempts this path); ``SYNAPSEOPS_AGGREGATION_MAX_UPLOAD_BYTES``
does, counted as the bytes stream in.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.encoders import jsonable_encoder

from api.deps import EngineDep, ProducerDep, SettingsDep
from sinks.aggregation.jobs import MAX_ERRORS, get_job, progress, start_job
from sinks.aggregation.sources import get_source
from streams.aggregation.bulk_lines import csv_records, ndjson_records
from streams.aggregation.logic.common import Context
from streams.aggregation.raw import raw_headers
from streams.aggregation.transform import transform_payload
from synapseops.errors import PayloadUntransformable, RecordInvalid
from synapseops.ids import new_traceparent, trace_id_of
from synapseops.kafka import Outgoing
from topics.registry import AGGREGATION_RAW

router = APIRouter(prefix="/aggregation/sources", tags=["aggregation: uploads"])
UPLOAD_PATH = re.compile(r"^/api/v1/aggregation/sources/[^/]+/uploads$")
BATCH = 500
PROGRESS_EVERY_S = 1.0


class _Upload:
    """One upload's counts, errors and pending batch."""

    def __init__(self, engine: Any, producer: Any, source: dict[str, Any], job_id: Any) -> None:
        self.engine, self.producer, self.source, self.job_id = engine, producer, source, job_id
        self.records_in = self.records_out = self.records_failed = self.bytes_done = 0
        self.errors: list[dict[str, Any]] = []
        self.pending: list[Outgoing] = []
        self.reported = time.monotonic()
        traceparent = new_traceparent()
        self.traceparent = traceparent
        self.context = Context(
            source=source["name"],
            source_type="bulk_upload",
            ingested_at=datetime.now(UTC),
            trace_id=trace_id_of(traceparent) or "",
        )

    def fail(self, line: int, reason: str) -> None:
        self.records_failed += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": line, "reason": reason})

    def add(self, line: int, record: dict[str, Any]) -> None:
        try:
            (event,) = transform_payload(self.source["logic"], record, self.context)
        except (PayloadUntransformable, ValueError) as exc:
            self.fail(line, str(exc))
            return
        headers = raw_headers(
            source=self.source["name"],
            logic=self.source["logic"],
            source_type="bulk_upload",
            event_id=event.id,
            event_type=event.type,
            traceparent=self.traceparent,
            job_id=self.job_id,
        )
        value = json.dumps(record, separators=(",", ":")).encode()
        key = f"{self.source['name']}/{event.subject or event.id}".encode()
        self.pending.append(Outgoing(AGGREGATION_RAW.name, value, key=key, headers=headers))

    async def flush(self, final: bool = False) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            answers = await self.producer.send_many(batch)
            failed = [a for a in answers if isinstance(a, BaseException)]
            if failed:
                raise HTTPException(
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    f"the event stream did not take {len(failed)} record(s): {failed[0]}",
                    headers={"Retry-After": "5"},
                )
            self.records_out += len(batch)
        if final or time.monotonic() - self.reported >= PROGRESS_EVERY_S:
            await self.report(None)

    async def report(self, state: str | None) -> None:
        self.reported = time.monotonic()
        await asyncio.to_thread(
            progress,
            self.engine,
            self.job_id,
            records_in=self.records_in,
            records_out=self.records_out,
            records_failed=self.records_failed,
            bytes_done=self.bytes_done,
            errors=self.errors,
            state=state,
        )


@router.post("/{name}/uploads")
async def upload(
    name: str,
    request: Request,
    engine: EngineDep,
    producer: ProducerDep,
    settings: SettingsDep,
    format: Literal["ndjson", "csv"] = Query("ndjson"),  # noqa: A002 - the API's word
) -> Any:
    source = await asyncio.to_thread(get_source, engine, name)
    if source["kind"] != "bulk":
        raise RecordInvalid(f"data source {name} is a {source['kind']} source, not bulk")
    declared = request.headers.get("content-length")
    total = int(declared) if declared and declared.isdigit() else None
    cap = settings.aggregation.max_upload_bytes
    if total is not None and total > cap:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"upload over {cap} bytes")
    job_id = await asyncio.to_thread(start_job, engine, name, "bulk", total)
    state = _Upload(engine, producer, source, job_id)

    async def counted() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            state.bytes_done += len(chunk)
            if state.bytes_done > cap:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"upload over {cap} bytes")
            yield chunk

    reader = csv_records if format == "csv" else ndjson_records
    try:
        async for line, record in reader(counted()):
            state.records_in += 1
            if isinstance(record, str):
                state.fail(line, record)
            else:
                state.add(line, record)
            if len(state.pending) >= BATCH:
                await state.flush()
        await state.flush(final=True)
    except BaseException:
        await state.report("failed")
        raise
    await state.report("succeeded")
    job = await asyncio.to_thread(get_job, engine, job_id)
    return jsonable_encoder(job | {"errors": job["errors"][:100]})
