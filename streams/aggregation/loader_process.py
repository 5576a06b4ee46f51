"""``synapseops loader``: the warehouse loader as a process of its own.

Runs one :class:`~streams.aggregation.loader.WarehouseLoader` until SIGTERM/SIGINT; when it
dies (a fatal client error, the database gone at assignment) it is built again after a
backoff. Serves ``/metrics`` (Prometheus) and ``/health`` on
``SYNAPSEOPS_LOADER_METRICS_HOST:PORT``: 200 while the loop polls, 503 otherwise, with what it
loaded so far.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas import CANONICAL_EVENT, AvroSerde, schema_store
from schemas.store import register_schemas
from sinks.aggregation.warehouse import Warehouse
from sinks.db import make_engine
from streams.aggregation.loader import WarehouseLoader
from synapseops.kafka import consumer_config
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import CANONICAL_EVENTS

log = get_logger(__name__)

# The loop polls at least every 0.5 s; a loop silent this long is not working.
STALE_S = 30.0
RESTART_MAX_S = 30.0


class _State:
    def __init__(self) -> None:
        self.loader: WarehouseLoader | None = None
        self.started = time.monotonic()

    def health(self) -> tuple[int, dict[str, Any]]:
        loader = self.loader
        if loader is None or loader.consumer is None:
            return 503, {"status": "starting"}
        age = time.monotonic() - loader.last_poll
        body = {"status": "ok" if age < STALE_S else "stalled", "loaded": loader.loaded}
        return (200 if age < STALE_S else 503), body


def _serve_http(state: _State, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            if self.path.startswith("/metrics"):
                status, data, kind = 200, generate_latest(), CONTENT_TYPE_LATEST
            elif self.path.startswith("/health"):
                status, body = state.health()
                data, kind = json.dumps(body).encode(), "application/json"
            else:
                status, data, kind = 404, b"not found", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="loader-http", daemon=True).start()
    return server


def build_loader(settings: Settings) -> WarehouseLoader:
    engine = make_engine(settings)
    serde = AvroSerde(schema_store(settings.schema_registry), CANONICAL_EVENT)
    # Offsets committed to Kafka are only for lag tools; the stored ones are the truth.
    config = consumer_config(settings.kafka, settings.loader.group_id)
    return WarehouseLoader(
        config,
        Warehouse(engine, settings.loader.group_id),
        serde,
        batch_size=settings.loader.batch_size,
        retry_initial_s=settings.loader.retry_initial_s,
        topic=settings.loader.topic or CANONICAL_EVENTS.name,
    )


async def _run(settings: Settings, state: _State) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stop() -> None:
        stopping.set()
        if state.loader is not None:
            asyncio.ensure_future(state.loader.stop())

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    backoff = 1.0
    while not stopping.is_set():
        state.loader = build_loader(settings)
        try:
            await state.loader.run()
        except Exception:
            log.exception("loader died; building it again", extra={"wait_s": backoff})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_MAX_S)
        else:
            backoff = 1.0


def run_loader(settings: Settings) -> None:
    """Load the canonical topic into the warehouse until told to stop (blocking)."""
    register_schemas(settings.schema_registry)
    state = _State()
    server = _serve_http(state, settings.loader.metrics_host, settings.loader.metrics_port)
    log.info("loader started", extra={"group": settings.loader.group_id})
    try:
        asyncio.run(_run(settings, state))
    finally:
        server.shutdown()
