"""Data Aggregation's pages: run health per source (live), the canonical schema with its
versions and each source's field mapping, and ingestion jobs followed live.

Every read is a call of the ``/api/v1/aggregation`` route functions, so the pages show what
the API answers.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.console.render import PagesDep, UserDep
from api.deps import EngineDep
from api.routes.aggregation import schema as api
from api.routes.aggregation import sources as sources_api

BASE = "/services/data-aggregation"
router = APIRouter(prefix=BASE, include_in_schema=False)
HIGH_LATENCY_S = 60.0  # a source whose p99 over the last hour passes this is flagged


def minute_charts(
    per_source: dict[str, list[dict[str, Any]]], now: datetime, minutes: int = 60
) -> dict[str, dict[str, Any]]:
    """uPlot data of the window's every minute, one series per source: ``volume`` (events)
    and ``latency`` (p99, seconds). A minute without events is ``None`` in both, so the
    chart shows a gap there instead of a line drawn across it."""
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    axis = [end - timedelta(minutes=back) for back in range(minutes - 1, -1, -1)]
    x = [int(moment.timestamp()) for moment in axis]
    volume, latency = [], []
    for name, rows in per_source.items():
        by_minute = {_minute(row["minute"]): row for row in rows}
        found = [by_minute.get(moment) for moment in axis]
        volume.append({"label": name, "values": [r["events"] if r else None for r in found]})
        latency.append(
            {
                "label": name,
                "values": [
                    float(r["p99_s"]) if r and r["p99_s"] is not None else None for r in found
                ],
            }
        )
    if not any(v is not None for s in volume for v in s["values"]):
        x = []
    return {
        "volume": {"x": x, "series": volume},
        "latency": {"x": x, "series": latency, "unit": "s"},
    }


def _minute(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


async def _charts(engine: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """Each source's minutes read at once (one query each, so the page waits for the
    slowest, not for their sum)."""
    found = await asyncio.gather(
        *(run_in_threadpool(api.health_minutes, name, engine, 60) for name in names)
    )
    return minute_charts(dict(zip(names, found, strict=True)), datetime.now(UTC), 60)


@router.get("", response_class=HTMLResponse)
async def dashboard(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep
) -> HTMLResponse:
    health, sources, jobs = await asyncio.gather(
        run_in_threadpool(api.health, engine, 60, HIGH_LATENCY_S),
        run_in_threadpool(sources_api.list_sources, engine),
        run_in_threadpool(api.jobs, engine, None),
    )
    # The charts' series are the sources the health saw in the window (not only the
    # registered ones: a removed source's rows are still in the warehouse).
    charts = await _charts(engine, [row["source"] for row in health])
    return pages.render(
        request,
        "aggregation/dashboard.html",
        user,
        health=health,
        sources=sources,
        jobs=jobs[:20],
        charts=charts,
        high_latency_s=HIGH_LATENCY_S,
    )


@router.get("/schema", response_class=HTMLResponse)
async def schema_page(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep
) -> HTMLResponse:
    schema = api.canonical_schema()
    sources = await run_in_threadpool(sources_api.list_sources, engine)
    mappings = [
        await run_in_threadpool(api.field_mapping, source["name"], engine) for source in sources
    ]
    return pages.render(request, "aggregation/schema.html", user, schema=schema, mappings=mappings)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(
    job_id: uuid.UUID, request: Request, user: UserDep, pages: PagesDep, engine: EngineDep
) -> HTMLResponse:
    job = await run_in_threadpool(api.job, job_id, engine)
    return pages.render(request, "aggregation/job.html", user, job=job)
