"""``/health`` and ``/metrics``: unauthenticated, for load balancers and Prometheus."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import sqlalchemy
from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from api.deps import EngineDep, SettingsDep
from api.metrics import exposition
from synapseops.kafka import broker_reachable
from synapseops.logging import get_logger
from synapseops.settings import KafkaSettings

router = APIRouter(tags=["ops"])
log = get_logger(__name__)

OK = "ok"
BROKER_TIMEOUT_S = 3.0
# Above the broker's own timeout and the engine's connect_timeout, so each check normally
# reports its own reason; this only catches a check that hangs past both.
CHECK_TIMEOUT_S = 8.0


def check_kafka(kafka: KafkaSettings) -> str:
    if broker_reachable(kafka, timeout=BROKER_TIMEOUT_S):
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


@router.get(
    "/health",
    summary="Kafka and PostgreSQL reachability",
    responses={503: {"description": "a dependency is down; its check holds the reason"}},
)
async def health(settings: SettingsDep, engine: EngineDep) -> JSONResponse:
    kafka, database = await asyncio.gather(
        _run_check("kafka", check_kafka, settings.kafka),
        _run_check("database", check_database, engine),
    )
    checks = {"kafka": kafka, "database": database}
    healthy = all(result == OK for result in checks.values())
    if not healthy:
        log.warning("health check failed", extra={"checks": checks})
    return JSONResponse(
        {"status": OK if healthy else "unavailable", "checks": checks},
        status_code=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


@router.get("/metrics", summary="Prometheus exposition", response_class=Response)
def metrics() -> Response:
    body, content_type = exposition()
    return Response(content=body, media_type=content_type)
