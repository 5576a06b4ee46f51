"""``/lineage/{trace_id}``: one trace from the raw input to every effect, as one page.

Reads :func:`sinks.views.lineage.trace`, the function behind ``GET /api/v1/lineage/{trace_id}``.
Every effect the console shows (a Run, a settlement, a dead letter) links here by its trace.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.console.render import PagesDep, UserDep, as_text
from api.deps import EngineDep
from sinks.views.lineage import trace

router = APIRouter(include_in_schema=False)


@router.get("/lineage/{trace_id}", response_class=HTMLResponse)
async def lineage_page(
    request: Request,
    user: UserDep,
    pages: PagesDep,
    engine: EngineDep,
    trace_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
) -> HTMLResponse:
    found = await run_in_threadpool(trace, engine, trace_id)
    response = pages.render(
        request,
        "lineage.html",
        user,
        trace=found,
        text=as_text,
        effects_runs=[run for run in found.runs if run["status"] == "succeeded"],
        effects_settlements=[s for s in found.settlements if s["state"] == "settled"],
    )
    if found.empty:
        response.status_code = 404
    return response
