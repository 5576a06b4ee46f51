"""``/``: every service at a glance — health, what waits for a person, links into each service.

Reads through the same functions as ``/health`` (the API's probe), ``/api/v1/overview`` and
each service's summary routes; the worker's health is its own ``/health`` (asked over HTTP,
cached a few seconds). The whole page body is the live part ``status`` (polled every 5 s).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.console.registry import HomeCard, ServicePages
from api.console.render import PagesDep, UserDep
from api.deps import EngineDep, SettingsDep
from api.routes.health import health_probe
from api.routes.views.overview import overview
from synapseops.logging import get_logger
from synapseops.settings import Settings

router = APIRouter(include_in_schema=False)
log = get_logger(__name__)

WORKER_TIMEOUT_S = 1.5
WORKER_CACHE_S = 3.0
_worker_cache: dict[str, tuple[float, dict[str, Any]]] = {}


async def worker_health(settings: Settings) -> dict[str, Any]:
    """``{status, detail}`` of the worker's ``/health`` (cached ``WORKER_CACHE_S``)."""
    url = f"http://{settings.worker.metrics_host}:{settings.worker.metrics_port}/health"
    cached = _worker_cache.get(url)
    if cached is not None and time.monotonic() - cached[0] < WORKER_CACHE_S:
        return cached[1]
    try:
        async with httpx.AsyncClient(timeout=WORKER_TIMEOUT_S) as client:
            response = await client.get(url)
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        down = body.get("down") or []
        answer = {
            "status": "ok" if response.status_code == 200 else "bad",
            "detail": "running"
            if response.status_code == 200
            else f"down: {', '.join(down)}"
            if down
            else f"answered {response.status_code}",
            "assigned": body.get("assigned_partitions"),
        }
    except (httpx.HTTPError, ValueError) as exc:
        answer = {"status": "bad", "detail": f"not answering at {url} ({type(exc).__name__})"}
    _worker_cache[url] = (time.monotonic(), answer)
    return answer


async def _cards(services: tuple[ServicePages, ...], engine: Any) -> list[HomeCard]:
    """Every service's card, read at once: each is a few queries of its own, so the page
    waits for the slowest card rather than for their sum (~55 ms → ~25 ms, demo data)."""
    readers = [service.home_card for service in services if service.home_card is not None]
    return list(await asyncio.gather(*(asyncio.to_thread(read, engine) for read in readers)))


@router.get("/", response_class=HTMLResponse)
async def home(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep, settings: SettingsDep
) -> HTMLResponse:
    services: tuple[ServicePages, ...] = request.app.state.console_services
    api_health, worker, summary, cards = await asyncio.gather(
        health_probe(request, settings, engine).answer(),
        worker_health(settings),
        asyncio.to_thread(overview, engine),
        _cards(services, engine),
    )
    owner = {pipeline: service for service in services for pipeline in service.pipelines}
    return pages.render(
        request,
        "home/page.html",
        user,
        api_health=api_health,
        worker=worker,
        summary=summary,
        cards=cards,
        owner=owner,
    )
