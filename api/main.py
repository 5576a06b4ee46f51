"""The app factory: no app exists at import time; ``create_app(settings)`` builds one.

The lifespan builds the shared resources once — an idempotent ``acks=all``
:class:`~synapseops.kafka.AsyncProducer` and a SQLAlchemy engine — keeps them on
``app.state`` (read through ``api/deps.py``) and closes them on shutdown. A producer passed
in by the caller (unit tests) is used as is and left for the caller to close.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.metrics import DEAD_LETTER_GAUGES
from api.middleware import AccessLogMiddleware
from api.routes import PUBLIC_ROUTERS, api_v1_router
from sinks.db import make_engine
from synapseops.errors import DatabaseUnavailable
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import Settings

log = get_logger(__name__)

DATABASE_RETRY_AFTER_S = 5


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The driver's message names the database host and user: the log keeps it (scrubbed),
    # the caller gets a reason without it.
    log.warning("database unavailable", extra={"path": request.url.path, "error": str(exc)})
    return JSONResponse(
        {"detail": "the database is unavailable; retry later"},
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def create_app(settings: Settings, *, producer: AsyncProducer | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned_producer = producer is None
        app.state.producer = producer if producer is not None else AsyncProducer(settings.kafka)
        app.state.engine = make_engine(settings)
        DEAD_LETTER_GAUGES.engine = app.state.engine
        log.info(
            "api started",
            extra={"kafka": settings.kafka.bootstrap, "env": settings.env},
        )
        try:
            yield
        finally:
            if owned_producer:
                # close() flushes: records still in flight get their delivery reports.
                await asyncio.to_thread(app.state.producer.close)
            if DEAD_LETTER_GAUGES.engine is app.state.engine:
                DEAD_LETTER_GAUGES.engine = None
            app.state.engine.dispose()
            log.info("api stopped")

    app = FastAPI(
        title="SynapseOps",
        summary="Webhook ingress to Kafka and the management API of SynapseOps.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(AccessLogMiddleware)
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    for router in PUBLIC_ROUTERS:
        app.include_router(router)
    app.include_router(api_v1_router)
    return app
