"""The app factory: no app exists at import time; ``create_app(settings)`` builds one.

The lifespan builds the shared resources once — an idempotent ``acks=all``
:class:`~synapseops.kafka.AsyncProducer` and a SQLAlchemy engine — keeps them on
``app.state`` (read through ``api/deps.py``) and closes them on shutdown. A producer passed
in by the caller (unit tests) is used as is and left for the caller to close.

Around the routes, outermost first: the access log, the body cap of every route
(:mod:`api.body_limit`), the principal check of ``/api/v1`` (:mod:`api.auth`). The
interactive docs (``/docs``, ``/redoc``) exist only in dev; outside dev ``/openapi.json``
needs a token of any role (machines generate clients from it; people read it in dev).
"""

from __future__ import annotations

import asyncio
import gc
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from api.access import RouteRoles, annotate_openapi
from api.auth import PrincipalMiddleware
from api.body_limit import BodyLimitMiddleware
from api.console import mount_console
from api.metrics import (
    CRM_CONFLICT_GAUGES,
    DEAD_LETTER_GAUGES,
    UNKNOWN_CONNECTOR,
    count_5xx_from_zero,
)
from api.middleware import AccessLogMiddleware
from api.overload import OverloadMiddleware
from api.routes import PUBLIC_ROUTERS, api_v1_router, route_roles
from api.routes.aggregation.uploads import UPLOAD_PATH
from sinks.db import make_engine
from synapseops.errors import DatabaseUnavailable, RecordError, SchemaInvalid
from synapseops.kafka import AsyncProducer
from synapseops.kafka_lag import CONSUMER_LAG
from synapseops.logging import get_logger
from synapseops.principals import Role
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


async def _value_refused(request: Request, exc: Exception) -> JSONResponse:
    # A value that passed the request's validation but not the database's (an id past
    # bigint, a malformed byte): the request is at fault, not the server. The database's
    # own text is not echoed: it may quote the value.
    log.info("request value refused by the database", extra={"path": request.url.path})
    return JSONResponse(
        {"detail": "a value of the request is out of range or malformed for storage"},
        status_code=422,
    )


async def _record_error(request: Request, exc: Exception) -> JSONResponse:
    # Every RecordError leaf names its own status (404 not found, 409 conflict, 422 invalid);
    # a leaf that knows when to come back (a replay in progress) says so in Retry-After.
    assert isinstance(exc, RecordError)
    retry_after = exc.retry_after_s
    headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after is not None else None
    return JSONResponse({"detail": str(exc)}, status_code=exc.http_status, headers=headers)


def create_app(settings: Settings, *, producer: AsyncProducer | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned_producer = producer is None
        app.state.producer = producer if producer is not None else AsyncProducer(settings.kafka)
        app.state.engine = make_engine(settings)
        DEAD_LETTER_GAUGES.engine = app.state.engine
        DEAD_LETTER_GAUGES.cache_s = settings.observability.dead_letter_gauges_cache_s
        CRM_CONFLICT_GAUGES.engine = app.state.engine
        CRM_CONFLICT_GAUGES.cache_s = settings.observability.dead_letter_gauges_cache_s
        if owned_producer:  # a caller's producer (unit tests) means no Kafka to read lag from
            CONSUMER_LAG.watch(settings)
        count_5xx_from_zero(["stripe", UNKNOWN_CONNECTOR, *settings.ingress.sources])
        log.info(
            "api started",
            extra={"kafka": settings.kafka.bootstrap, "env": settings.env},
        )
        # What startup built (routes, models, settings, table metadata: ~160,000 objects) is
        # never garbage; frozen, it is left out of every full collection, each of which
        # otherwise held the event loop ~40-80 ms — every request in flight waited (p99).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            if owned_producer:
                # close() flushes: records still in flight get their delivery reports.
                await asyncio.to_thread(app.state.producer.close)
            CONSUMER_LAG.unwatch(settings)
            if DEAD_LETTER_GAUGES.engine is app.state.engine:
                DEAD_LETTER_GAUGES.engine = None
            if CRM_CONFLICT_GAUGES.engine is app.state.engine:
                CRM_CONFLICT_GAUGES.engine = None
            app.state.engine.dispose()
            log.info("api stopped")

    dev = settings.env == "dev"
    app = FastAPI(
        title="SynapseOps",
        summary="Webhook ingress to Kafka and the management API of SynapseOps.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if dev else None,
        redoc_url="/redoc" if dev else None,
        # FastAPI's own OpenTelemetry spans/metrics would start only under a global OTel
        # provider, which nothing here sets up (metrics are Prometheus', traces travel as
        # traceparent headers); left on, every request asks whether one appeared.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    app.add_exception_handler(RecordError, _record_error)
    app.add_exception_handler(SchemaInvalid, _value_refused)
    app.add_exception_handler(sa_exc.DataError, _value_refused)
    for router in PUBLIC_ROUTERS:
        app.include_router(router)
    app.include_router(api_v1_router)
    console_sessions = mount_console(app, settings)

    roles = route_roles()
    if not dev and app.openapi_url:
        roles.require("GET", app.openapi_url, Role.VIEWER)
    _document_roles(app, roles)

    def engine() -> sqlalchemy.Engine | None:
        return getattr(app.state, "engine", None)

    # add_middleware puts each one outside the ones before it: the last added runs first.
    app.add_middleware(
        PrincipalMiddleware,
        roles=roles,
        bootstrap_token=settings.api.token.get_secret_value,
        engine=engine,
        sessions=console_sessions,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.api.max_body_bytes,
        # Bulk uploads stream their body and cap it themselves (api/routes/aggregation).
        exempt=lambda path: UPLOAD_PATH.match(path) is not None,
    )
    app.add_middleware(AccessLogMiddleware)
    # Outermost: a webhook past the in-flight bound is refused before any other work.
    app.add_middleware(OverloadMiddleware, ingress=settings.ingress)
    return app


def _document_roles(app: FastAPI, roles: RouteRoles) -> None:
    """Each operation's role in the OpenAPI document (``x-required-role``)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = annotate_openapi(build(), roles)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
