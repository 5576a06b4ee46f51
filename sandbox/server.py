"""The sandbox process: every simulated outside system behind one uvicorn server, plus SMTP.

``create_app(settings)`` builds an isolated app (fresh state; the SMTP server on
``settings.sandbox.smtp_port`` and the HubSpot webhook pusher start and stop with the app's
lifespan) — tests serve it on free ports (:mod:`sandbox.harness`). Targets: ``/erp``,
``/finance``, ``/salesforce``, ``/hubspot``, ``/github``, ``/slack``, ``/teams``; the control
plane is ``/_sandbox``. ``serve(settings)`` runs it on ``settings.sandbox.host:port`` until stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from sandbox import (
    chat,
    control,
    crm_control,
    erp,
    finance,
    github,
    hubspot,
    hubspot_batch,
    hubspot_events,
    hubspot_search,
    salesforce,
    salesforce_cdc,
    salesforce_collections,
    salesforce_query,
    teams,
)
from sandbox import metrics as sandbox_metrics
from sandbox.gate import Refusal, TargetGate, answer_refusal
from sandbox.smtp import SmtpServer
from sandbox.state import TARGETS, SandboxState
from synapseops.errors import ConfigurationError
from synapseops.logging import get_logger
from synapseops.settings import Settings

log = get_logger(__name__)


def create_app(settings: Settings, state: SandboxState | None = None) -> FastAPI:
    state = state or SandboxState.fresh()
    host, smtp_port = settings.sandbox.host, settings.sandbox.smtp_port

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        smtp = SmtpServer(state.mailbox, host, smtp_port)
        try:
            await asyncio.to_thread(smtp.start)
        except (OSError, RuntimeError) as exc:
            raise ConfigurationError(f"sandbox SMTP cannot listen on {host}:{smtp_port}") from exc
        log.info("sandbox smtp listening", extra={"host": host, "port": smtp_port})
        try:
            async with hubspot_events.pushing(state.hubspot_webhooks):
                yield
        finally:
            await asyncio.to_thread(smtp.stop)

    app = FastAPI(title="SynapseOps sandbox", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.sandbox = state
    for router in (
        control.router,
        crm_control.router,
        hubspot_events.control_router,
        github.control_router,
        chat.control_router,
        teams.control_router,
        erp.router,
        finance.router,
        # Fixed paths before the sObject routes whose {id} segments would swallow them.
        salesforce_collections.router,
        salesforce_query.router,
        salesforce_cdc.router,
        salesforce.router,
        hubspot_batch.router,
        hubspot_search.router,
        hubspot_events.router,
        hubspot.router,
        github.router,
        chat.slack_router,
        teams.teams_router,
    ):
        app.include_router(router)
    app.add_exception_handler(Refusal, answer_refusal)
    app.add_middleware(TargetGate, recorder=state.recorder, faults=state.faults, targets=TARGETS)
    sandbox_metrics.instrument(app, TARGETS)
    return app


def serve(settings: Settings) -> None:
    """Run the sandbox in the foreground (``synapseops sandbox``); returns when it stops."""
    sandbox = settings.sandbox
    # aiosmtpd logs every SMTP command (and so every address) at INFO: connection noise.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger().level))
    log.info("sandbox starting", extra={"url": sandbox.url, "smtp_port": sandbox.smtp_port})
    uvicorn.run(
        create_app(settings),
        host=sandbox.host,
        port=sandbox.port,
        log_config=None,
        access_log=False,
    )
