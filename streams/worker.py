"""``synapseops worker``: one place that wires the worker process together.

Topics applied → engine → runtime (producer, failure router) → Faust app with one road agent
per pipeline, its retry-tier consumers and the dead-letter store (streams/bootstrap.py) →
health server → run until SIGTERM/SIGINT. Faust's worker runs the loop and its signal
handlers; it is told to leave our JSON logging alone and not to parse ``sys.argv``.
"""

from __future__ import annotations

import importlib
from typing import Any

import faust
import sqlalchemy

from sinks.db import make_engine
from streams.app import create_app
from streams.bootstrap import RoadTiers, Runtime, attach_pipeline, load_services
from streams.dead_letters import DeadLetterStoreService
from streams.health import HealthServer
from synapseops.errors import ConfigurationError
from synapseops.logging import get_logger
from synapseops.settings import Settings

log = get_logger(__name__)


def apply_topics(settings: Settings) -> bool:
    """Create/align the registry's topics when ``topics.admin`` is installed.

    Returns whether it ran. Without it, topics must already exist (the app never declares).
    """
    try:
        admin: Any = importlib.import_module("topics.admin")
    except ModuleNotFoundError as exc:
        if exc.name != "topics.admin":
            raise
        log.warning("topics.admin not available; expecting topics to exist already")
        return False
    admin.apply_topics(settings)
    return True


def build_worker(settings: Settings, engine: sqlalchemy.Engine) -> faust.Worker:
    """The worker, fully wired but not running."""
    app = create_app(settings)
    runtime = Runtime.build(settings, engine)
    pipelines, extra_services = load_services(runtime)
    for pipeline in pipelines:
        attach_pipeline(app, pipeline, runtime.router)
    health = HealthServer(app, settings.worker.metrics_host, settings.worker.metrics_port)
    # mode stops services in reverse order: the tiers, which own the shared producer, last.
    worker = faust.Worker(
        app,
        health,
        RoadTiers(runtime, pipelines),
        DeadLetterStoreService(
            settings,
            engine,
            producer=runtime.producer,
            pipelines={pipeline.name: pipeline.spec for pipeline in pipelines},
        ),
        *extra_services,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    # The progress spinner writes terminal escapes to stdout, into the JSON log lines.
    worker.spinner = None
    return worker


def run_worker(settings: Settings) -> None:
    """Run the worker in the foreground until SIGTERM/SIGINT; returns after a clean stop."""
    apply_topics(settings)
    # Faust creates only the last level of its data dir.
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings)
    worker = build_worker(settings, engine)
    log.info(
        "worker starting",
        extra={
            "group_id": settings.worker.group_id,
            "bootstrap": settings.kafka.bootstrap,
            "metrics": f"{settings.worker.metrics_host}:{settings.worker.metrics_port}",
        },
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        # Faust ends every run with SystemExit; only a non-zero code is a failure.
        if exc.code not in (0, None):
            raise ConfigurationError(f"the worker stopped with exit code {exc.code}") from exc
    finally:
        engine.dispose()
        log.info("worker stopped")
