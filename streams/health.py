"""The worker's own HTTP surface: ``GET /health`` and ``GET /metrics`` (Prometheus).

An aiohttp server (Faust already depends on aiohttp) run as a :class:`mode.Service` next to
the Faust app on the same loop, on ``SYNAPSEOPS_WORKER_METRICS_HOST:PORT``.

``/health`` answers 200 while the app runs and its consumer has started (an assignment is
reported, not required: a worker beyond the partition count is healthy and idle) and every
supervised background task runs (``streams/supervision.py``); 503 while starting, stopping,
after a crash, or while a background task is down — the body names it and says why
(``{"tasks": {"dead-letter-store": {"state": "down", "error": "...", ...}}, "down": [...]}``).
The body is JSON for people and ``synapseops status``.
"""

from __future__ import annotations

from typing import Any

import faust
from aiohttp import web
from faust.exceptions import ConsumerNotStarted
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.supervision import Supervisor
from synapseops.logging import get_logger

log = get_logger(__name__)


def app_health(app: faust.App) -> tuple[bool, dict[str, Any]]:
    """``(healthy, details)`` of a Faust app, without creating a consumer as a side effect."""
    # app.consumer would build a consumer on first access; read the private slot instead.
    consumer = getattr(app, "_consumer", None)
    consumer_state = consumer.state if consumer is not None else "absent"
    try:
        assigned = len(consumer.assignment()) if consumer is not None else 0
    except ConsumerNotStarted:  # built, its thread not yet started: "starting", not a 500
        assigned = 0
    healthy = app.state == "running" and consumer_state == "running"
    details = {
        "app": app.state,
        "consumer": consumer_state,
        "assigned_partitions": assigned,
        "rebalancing": bool(getattr(app, "rebalancing", False)),
    }
    return healthy, details


def worker_health(
    app: faust.App | None, supervisor: Supervisor | None
) -> tuple[bool, dict[str, Any]]:
    """``(healthy, details)`` of the Faust app (if any) and the supervised tasks (if any)."""
    healthy, details = app_health(app) if app is not None else (True, {})
    if supervisor is not None:
        tasks_ok, tasks = supervisor.health()
        details["tasks"] = tasks
        details["down"] = supervisor.down()
        healthy = healthy and tasks_ok
    return healthy, details


class HealthServer(Service):
    """Serves /health and /metrics while the worker runs."""

    def __init__(
        self,
        app: faust.App | None,
        host: str,
        port: int,
        *,
        supervisor: Supervisor | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.host = host
        self.port = port
        self.supervised = supervisor
        self._runner: web.AppRunner | None = None

    def _web_app(self) -> web.Application:
        web_app = web.Application()
        web_app.router.add_get("/health", self._health)
        web_app.router.add_get("/metrics", self._metrics)
        return web_app

    async def _health(self, request: web.Request) -> web.Response:
        healthy, details = worker_health(self.app, self.supervised)
        details["status"] = "ok" if healthy else "unavailable"
        return web.json_response(details, status=200 if healthy else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def on_start(self) -> None:
        self._runner = web.AppRunner(self._web_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        log.info("health and metrics served", extra={"host": self.host, "port": self.port})

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
