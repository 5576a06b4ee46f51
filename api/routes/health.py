"""``/health`` and ``/metrics``: unauthenticated, for load balancers and Prometheus.

A health answer costs a Kafka metadata call and a database round trip, and ``/health`` is
unauthenticated: anybody polling it in a loop would otherwise make the API open a broker
client and a connection per request. So one :class:`HealthProbe` per app keeps one admin
client for its life and reuses its last answer for ``SYNAPSEOPS_OBSERVABILITY_HEALTH_CACHE_S``
seconds; concurrent requests wait for the one probe in flight instead of starting their own.
The answer says when it was checked (``checked_at``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from api.deps import EngineDep, SettingsDep
from api.metrics import exposition
from synapseops.kafka import create_admin
from synapseops.logging import get_logger
from synapseops.settings import KafkaSettings, Settings

router = APIRouter(tags=["ops"])
log = get_logger(__name__)

OK = "ok"
BROKER_TIMEOUT_S = 3.0
# Above the broker's own timeout and the engine's connect_timeout, so each check normally
# reports its own reason; this only catches a check that hangs past both.
CHECK_TIMEOUT_S = 8.0


def check_kafka(kafka: KafkaSettings, admin: AdminClient | None = None) -> str:
    try:
        metadata = (admin or create_admin(kafka)).list_topics(timeout=BROKER_TIMEOUT_S)
    except KafkaException:
        metadata = None
    if metadata is not None and metadata.brokers:
        return OK
    return f"no broker answered at {kafka.bootstrap} within {BROKER_TIMEOUT_S:g}s"


def check_database(engine: sqlalchemy.Engine) -> str:
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except SQLAlchemyError as exc:
        # The DBAPI message (e.g. "connection refused") says why; the URL may hold a password,
        # and the DBAPI message never contains it.
        cause = getattr(exc, "orig", None) or exc
        first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        return f"database unavailable: {type(cause).__name__}: {first_line}"
    return OK


async def _run_check(name: str, check: Callable[..., str], *args: object) -> str:
    # Both checks block (librdkafka metadata call, psycopg2 connect): keep them off the loop.
    try:
        return await asyncio.wait_for(asyncio.to_thread(check, *args), timeout=CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"{name} check did not finish within {CHECK_TIMEOUT_S:g}s"


class HealthProbe:
    """The app's health answer, probed at most once per ``cache_s`` (see the module doc)."""

    def __init__(self, kafka: KafkaSettings, engine: sqlalchemy.Engine, cache_s: float) -> None:
        self.kafka = kafka
        self.engine = engine
        self.cache_s = cache_s
        self._admin: AdminClient | None = None
        self._lock = asyncio.Lock()
        self._answer: dict[str, Any] | None = None
        self._at = 0.0
        self.probes = 0

    async def answer(self) -> dict[str, Any]:
        async with self._lock:
            if self._answer is not None and time.monotonic() - self._at < self.cache_s:
                return self._answer
            if self._admin is None:
                self._admin = create_admin(self.kafka)  # no network until it is used
            kafka, database = await asyncio.gather(
                _run_check("kafka", check_kafka, self.kafka, self._admin),
                _run_check("database", check_database, self.engine),
            )
            checks = {"kafka": kafka, "database": database}
            healthy = all(result == OK for result in checks.values())
            if not healthy:
                log.warning("health check failed", extra={"checks": checks})
            self.probes += 1
            self._at = time.monotonic()
            self._answer = {
                "status": OK if healthy else "unavailable",
                "checks": checks,
                "checked_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
            return self._answer


def health_probe(request: Request, settings: Settings, engine: sqlalchemy.Engine) -> HealthProbe:
    """The app's one probe, made on first use (the engine is the lifespan's)."""
    probe: HealthProbe | None = getattr(request.app.state, "health_probe", None)
    if probe is None or probe.engine is not engine:
        probe = HealthProbe(settings.kafka, engine, settings.observability.health_cache_s)
        request.app.state.health_probe = probe
    return probe


@router.get(
    "/health",
    summary="Kafka and PostgreSQL reachability (cached a few seconds)",
    responses={503: {"description": "a dependency is down; its check holds the reason"}},
)
async def health(request: Request, settings: SettingsDep, engine: EngineDep) -> JSONResponse:
    answer = await health_probe(request, settings, engine).answer()
    return JSONResponse(
        answer,
        status_code=status.HTTP_200_OK
        if answer["status"] == OK
        else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


@router.get("/metrics", summary="Prometheus exposition", response_class=Response)
def metrics() -> Response:
    body, content_type = exposition()
    return Response(content=body, media_type=content_type)
