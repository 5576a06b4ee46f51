"""Run one process of the platform in the foreground: ``worker``, ``api``, ``sandbox``."""

from __future__ import annotations

import typer

from synapseops.logging import configure_logging
from synapseops.settings import Settings


def _settings(process: str) -> Settings:
    settings = Settings()
    settings.require_safe_secrets()
    configure_logging(process, settings.log_level)
    return settings


def worker() -> None:
    """The Faust worker: every pipeline's agents, retry tiers included."""
    from streams.worker import run_worker

    run_worker(_settings("worker"))


def api() -> None:
    """The HTTP API (webhooks, management API, metrics) on SYNAPSEOPS_API_HOST:PORT."""
    from api.server import serve

    serve(_settings("api"))


def sandbox() -> None:
    """The simulated outside systems (ERP, finance, CRMs, Slack/Teams, SMTP)."""
    from sandbox.server import serve

    serve(_settings("sandbox"))


def loader() -> None:
    """The warehouse loader: the canonical topic into warehouse.events, exactly once."""
    from streams.aggregation.loader_process import run_loader

    run_loader(_settings("loader"))


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(loader)
    app.command()(api)
    app.command()(sandbox)
