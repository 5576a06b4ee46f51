"""Data Aggregation's pages: run health per source (live), the canonical schema with its
versions and each source's field mapping, and ingestion jobs followed live.

Every read is a call of the ``/api/v1/aggregation`` route functions, so the pages show what
the API answers.
"""

from __future__ import annotations

import uuid
from datetime import datetime
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


def _minutes_chart(engine: Any, names: list[str]) -> dict[str, Any]:
    """uPlot data: events per minute of the last hour, one series per source."""
    per_source = {name: api.health_minutes(name, engine, 60) for name in names}
    axis = sorted({row["minute"] for rows in per_source.values() for row in rows})
    series = [
        {
            "label": name,
            "values": [
                next((row["events"] for row in rows if row["minute"] == minute), 0)
                for minute in axis
            ],
        }
        for name, rows in per_source.items()
    ]
    x = [int(datetime.fromisoformat(minute).timestamp()) for minute in axis]
    return {"x": x, "series": series}


@router.get("", response_class=HTMLResponse)
async def dashboard(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep
) -> HTMLResponse:
    health = await run_in_threadpool(api.health, engine, 60, 60.0)
    sources = await run_in_threadpool(sources_api.list_sources, engine)
    jobs = await run_in_threadpool(api.jobs, engine, None)
    chart = await run_in_threadpool(_minutes_chart, engine, [row["source"] for row in health])
    return pages.render(
        request,
        "aggregation/dashboard.html",
        user,
        health=health,
        sources=sources,
        jobs=jobs[:20],
        chart_data=chart,
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
