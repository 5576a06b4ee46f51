"""The sandbox's own ``/metrics``: what the simulated outside systems answered.

Each sandbox app keeps its own registry (tests run several sandboxes in one process; none may
count another's requests), served at ``GET /metrics`` in the Prometheus text format:

- ``synapseops_sandbox_requests_total{target,status}``: requests by simulated system (``erp``,
  ``finance``, ... from :data:`sandbox.state.TARGETS`; ``_sandbox`` for the control plane,
  ``other`` for anything else) and the status it answered, injected faults included — the
  outside world's view of what the platform sent it;
- ``synapseops_sandbox_request_seconds{target}``: how long the answers took (injected
  latency included).

The middleware is outermost, so a request the fault gate refuses is counted with its status.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL = "_sandbox"
OTHER = "other"


class SandboxMetrics:
    """One sandbox app's counters, in a registry of their own."""

    def __init__(self, targets: Collection[str]) -> None:
        self.targets = frozenset(targets)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "synapseops_sandbox_requests_total",
            "Requests the simulated outside systems answered, by target and status",
            ["target", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "synapseops_sandbox_request_seconds",
            "Time the simulated outside systems took to answer, by target",
            ["target"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )

    def target_of(self, path: str) -> str:
        first = path.lstrip("/").split("/", 1)[0]
        if first in self.targets or first == CONTROL:
            return first
        return OTHER


class CountingMiddleware:
    """Counts every HTTP request by target and the status it was answered with."""

    def __init__(self, app: ASGIApp, metrics: SandboxMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            target = self.metrics.target_of(scope["path"])
            self.metrics.requests.labels(target, str(status)).inc()
            self.metrics.seconds.labels(target).observe(time.perf_counter() - started)


def instrument(app: FastAPI, targets: Collection[str]) -> SandboxMetrics:
    """Serve ``/metrics`` on ``app`` and count its requests (call after the other
    middleware: the last added runs first)."""
    metrics = SandboxMetrics(targets)

    @app.get("/metrics", include_in_schema=False)
    def exposition(_request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(CountingMiddleware, metrics=metrics)
    return metrics
