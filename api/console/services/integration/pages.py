"""The API Integration service's pages: dashboard, flows and the flow builder, runs, connections.

Reads call the ``/api/v1`` route functions (flows, runs, connectors, endpoints, credentials,
mappings) with the page's filters; building a flow, enabling it, re-running runs are forms and
buttons that call those routes with the user's session. The mapping editor is in
:mod:`api.console.services.integration.mappings`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from api.console.render import PagesDep, UserDep, parse_moment
from api.deps import EngineDep
from api.routes.integration import connectors as connector_routes
from api.routes.integration import credentials as credential_routes
from api.routes.integration import flows as flow_routes
from api.routes.integration import mappings as mapping_routes
from api.routes.integration import runs as run_routes
from sinks.integration import store
from sinks.integration.run_health import hourly_runs

BASE = "/services/api-integration"
router = APIRouter(prefix=BASE, include_in_schema=False)

RUN_STATUSES = ("running", "succeeded", "failed", "dead", "duplicate")
PAGE = 50
Id = Annotated[int, Path(ge=1)]


def success_chart(
    rows: list[dict[str, Any]], names: dict[int, str], hours: int = 24
) -> dict[str, Any]:
    """uPlot data: success rate (%) per flow per UTC hour; null where nothing finished."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    axis = [now - timedelta(hours=n) for n in range(hours - 1, -1, -1)]
    rates: dict[int, dict[datetime, float]] = defaultdict(dict)
    for row in rows:
        if row["finished"]:
            rates[row["flow_id"]][row["hour"]] = round(100 * row["succeeded"] / row["finished"], 1)
    series = [
        {"label": names.get(flow_id, f"flow {flow_id}"), "values": [by.get(h) for h in axis]}
        for flow_id, by in sorted(rates.items())
    ]
    return {"x": [int(h.timestamp()) for h in axis] if series else [], "series": series,
            "percent": True}  # fmt: skip


@router.get("", response_class=HTMLResponse)
async def dashboard(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep
) -> HTMLResponse:
    summary = await run_in_threadpool(flow_routes.get_flow_summary, engine)
    hourly = await run_in_threadpool(hourly_runs, engine)
    failing = await run_in_threadpool(
        run_routes.list_flow_runs, engine, status_="dead", since=None, until=None, limit=8
    )
    names = {flow.flow_id: flow.name for flow in summary.flows}
    return pages.render(
        request,
        "integration/dashboard.html",
        user,
        summary=summary,
        chart_data=success_chart(hourly, names),
        failing=failing.items,
        names=names,
    )


@router.get("/flows", response_class=HTMLResponse)
async def flow_list(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep
) -> HTMLResponse:
    flows = await run_in_threadpool(flow_routes.list_flows, engine)
    catalog = await run_in_threadpool(_catalog, engine, user.may("admin"))
    return pages.render(request, "integration/flows.html", user, flows=flows, **catalog)


def _catalog(engine: Any, admin: bool) -> dict[str, Any]:
    """What the flow builder picks from: endpoints by direction, mappings, credentials."""
    connectors = {c.id: c for c in connector_routes.list_connectors(engine)}
    endpoints = connector_routes.list_endpoints(engine, connector_id=None, direction=None)
    mappings = mapping_routes.list_mappings(engine)
    return {
        "connectors": connectors,
        "sources": [e for e in endpoints if e.direction == "source"],
        "targets": [e for e in endpoints if e.direction == "target"],
        "endpoints": {e.id: e for e in endpoints},
        "mappings": {m.id: m for m in mappings},
        # Which secrets exist is the admins' business (the API's own rule).
        "credentials": credential_routes.list_credentials(engine) if admin else [],
    }


@router.get("/flows/new", response_class=HTMLResponse)
async def flow_builder(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep,
    mapping_id: int | None = None,
) -> HTMLResponse:  # fmt: skip
    catalog = await run_in_threadpool(_catalog, engine, user.may("admin"))
    return pages.render(
        request, "integration/builder.html", user, chosen_mapping=mapping_id, **catalog
    )


@router.get("/flows/{flow_id}", response_class=HTMLResponse)
async def flow_page(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep, flow_id: Id
) -> HTMLResponse:
    flow = await run_in_threadpool(flow_routes.get_flow, flow_id, engine)
    catalog = await run_in_threadpool(_catalog, engine, user.may("admin"))
    recent = await run_in_threadpool(
        run_routes.list_flow_runs, engine, flow_id=flow_id, status_=None, since=None,
        until=None, limit=20,
    )  # fmt: skip
    versions = await run_in_threadpool(store.list_mapping_versions, engine, flow.mapping_id)
    # (the store function behind GET /api/v1/mappings/{id}/versions)
    return pages.render(
        request, "integration/flow.html", user, flow=flow, runs=recent.items,
        versions=[v["version"] for v in versions], **catalog,
    )  # fmt: skip


@router.get("/flows/{flow_id}/mapping")
async def flow_mapping(
    request: Request, user: UserDep, engine: EngineDep, flow_id: Id
) -> RedirectResponse:
    """The mapping editor of the flow's mapping (query kept: ``sample_dead_letter``...)."""
    flow = await run_in_threadpool(flow_routes.get_flow, flow_id, engine)
    query = urlencode([*request.query_params.multi_items(), ("flow_id", str(flow_id))])
    return RedirectResponse(f"{BASE}/mappings/{flow.mapping_id}?{query}", status_code=303)


@router.get("/runs", response_class=HTMLResponse)
async def run_list(
    request: Request,
    user: UserDep,
    pages: PagesDep,
    engine: EngineDep,
    flow_id: str | None = None,
    status_: Annotated[str | None, Query(alias="status")] = None,
    since: str | None = None,
    until: str | None = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    flow = int(flow_id) if flow_id and flow_id.isdigit() else None
    state = cast(run_routes.RunStatus, status_) if status_ in RUN_STATUSES else None
    found = await run_in_threadpool(
        run_routes.list_flow_runs, engine, flow_id=flow, status_=state, since=parse_moment(since),
        until=parse_moment(until), limit=PAGE, before_id=before_id,
    )  # fmt: skip
    flows = await run_in_threadpool(flow_routes.list_flows, engine)
    bulk = {k: v for k, v in {"flow_id": flow, "status": state, "since": since or None,
                              "until": until or None}.items() if v is not None}  # fmt: skip
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("before_id", "part")]
    older = found.next_before_id
    return pages.render(
        request,
        "integration/runs.html",
        user,
        runs=found.items,
        flows={f.id: f for f in flows},
        statuses=RUN_STATUSES,
        form=dict(request.query_params),
        bulk=bulk,
        older=f"?{urlencode([*kept, ('before_id', str(older))])}" if older else None,
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep, run_id: Id
) -> HTMLResponse:
    run = await run_in_threadpool(run_routes.get_one_run, run_id, engine)
    flow = await run_in_threadpool(flow_routes.get_flow, run.flow_id, engine)
    return pages.render(request, "integration/run.html", user, run=run, flow=flow)


@router.get("/connections", response_class=HTMLResponse)
async def connections(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep
) -> HTMLResponse:
    catalog = await run_in_threadpool(_catalog, engine, user.may("admin"))
    return pages.render(request, "integration/connections.html", user, **catalog)
