"""``synapseops worker``: one place that wires the worker process together.

Topics applied, schemas registered (with a registry) → engine → runtime (producer, failure
router) → Faust app with one road agent per pipeline (an actor per partition, micro-batches
of records); every background task — retry-tier consumers, the dead-letter store, the
modules' own (pollers, forwarders) — under one supervisor (streams/bootstrap.py,
streams/supervision.py) → health server, which reports the app and every supervised task →
run until SIGTERM/SIGINT. Faust's worker runs the loop and its signal handlers; it is told to
leave our JSON logging alone and not to parse ``sys.argv``.
"""

from __future__ import annotations

import importlib
from typing import Any

import faust
import sqlalchemy

from schemas.store import register_schemas
from sinks.db import make_engine
from streams.app import create_app
from streams.bootstrap import Runtime, SharedProducer, load_services, road_tasks
from streams.health import HealthServer
from streams.road.agent import attach_pipeline
from streams.supervision import Supervisor
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
    loaded = load_services(runtime)
    for pipeline in loaded.pipelines:
        attach_pipeline(app, pipeline, runtime.router, settings.road)
    supervisor = Supervisor(
        [*road_tasks(runtime, loaded.pipelines), *loaded.tasks], settings.supervision
    )
    health = HealthServer(
        app, settings.worker.metrics_host, settings.worker.metrics_port, supervisor=supervisor
    )
    # mode stops services in reverse order: every supervised task first (a Kafka source's
    # lanes finish their deliveries), then the modules' services (the HTTP clients those
    # deliveries use), then the shared producer they all produce with, then health.
    worker = faust.Worker(
        app,
        health,
        SharedProducer(runtime),
        *loaded.services,
        supervisor,
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
    # Before anything encodes: the ids every trigger is written with are then in memory.
    register_schemas(settings.schema_registry)
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
