"""The whole local stack, in order: ``up`` / ``down`` / ``status``.

Steps of ``up`` (each is a no-op when its part already runs, so ``up`` twice is safe and never
starts a second broker)::

    kafka     LocalBroker (or whatever broker already answers on the bootstrap address)
    postgres  LocalPostgres (skipped when SYNAPSEOPS_DATABASE_URL is set)
    migrate   sinks.migrate.upgrade(settings.database_url)
    topics    topics.admin.apply_topics(settings): creates the registry's missing topics
    sandbox   `synapseops sandbox`  health GET {sandbox.url}/_sandbox/health
    worker    `synapseops worker`   health GET http://{worker.metrics_host}:{metrics_port}/health
    loader    `synapseops loader`   health GET http://{loader.metrics_host}:{metrics_port}/health
    api       `synapseops api`      health GET {api.url}/health (503 = up, database unreachable)
    traffic   `synapseops traffic`  sample traffic; only when asked for (``synapseops demo``)

``down`` stops the long-running ones in reverse order and leaves no process of this data
folder behind. The children get this process' environment plus the Settings they must share
(ports, data folder), so a stack built from overridden Settings stays one stack.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from synapseops.errors import ConfigurationError
from synapseops.local.kafka_broker import LocalBroker
from synapseops.local.postgres import LocalPostgres
from synapseops.local.processes import ManagedProcess
from synapseops.settings import Settings

log = logging.getLogger(__name__)

STEPS = (
    "kafka",
    "postgres",
    "migrate",
    "topics",
    "sandbox",
    "worker",
    "loader",
    "api",
    "traffic",
)
# What `up` starts when not told otherwise: the platform, not the demo's sample traffic.
DEFAULT_STEPS = STEPS[:-1]
SERVICES = ("kafka", "postgres", "sandbox", "worker", "loader", "api")
PROCESSES = ("sandbox", "worker", "loader", "api", "traffic")
# A Faust worker joins its group and recovers tables before it answers; the others are quick.
START_TIMEOUT_S = {
    "sandbox": 30.0,
    "worker": 120.0,
    "loader": 60.0,
    "api": 60.0,
    "traffic": 30.0,
}


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    healthy: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_steps(names: Iterable[str] | None) -> list[str]:
    """``["kafka,postgres", "api"]`` → the named steps in stack order; None → the default."""
    if not names:
        return list(DEFAULT_STEPS)
    wanted = {part.strip() for name in names for part in name.split(",") if part.strip()}
    unknown = wanted - set(STEPS)
    if unknown:
        raise ConfigurationError(
            f"unknown part(s) {', '.join(sorted(unknown))}; known: {', '.join(STEPS)}"
        )
    return [step for step in STEPS if step in wanted]


def child_environment(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the stack's processes: ours, plus the Settings they must share."""
    env = dict(os.environ if base is None else base)
    shared = {
        "SYNAPSEOPS_ENV": settings.env,
        "SYNAPSEOPS_DATA_DIR": str(settings.data_dir),
        "SYNAPSEOPS_LOG_LEVEL": settings.log_level,
        "SYNAPSEOPS_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "SYNAPSEOPS_KAFKA_CONTROLLER_PORT": str(settings.kafka.controller_port),
        "SYNAPSEOPS_DATABASE_LOCAL_PORT": str(settings.database.local_port),
        "SYNAPSEOPS_DATABASE_LOCAL_NAME": settings.database.local_name,
        "SYNAPSEOPS_DATABASE_LOCAL_USER": settings.database.local_user,
        "SYNAPSEOPS_API_HOST": settings.api.host,
        "SYNAPSEOPS_API_PORT": str(settings.api.port),
        "SYNAPSEOPS_SANDBOX_HOST": settings.sandbox.host,
        "SYNAPSEOPS_SANDBOX_PORT": str(settings.sandbox.port),
        "SYNAPSEOPS_SANDBOX_SMTP_PORT": str(settings.sandbox.smtp_port),
        "SYNAPSEOPS_WORKER_METRICS_HOST": settings.worker.metrics_host,
        "SYNAPSEOPS_WORKER_METRICS_PORT": str(settings.worker.metrics_port),
        "SYNAPSEOPS_LOADER_METRICS_HOST": settings.loader.metrics_host,
        "SYNAPSEOPS_LOADER_METRICS_PORT": str(settings.loader.metrics_port),
        "SYNAPSEOPS_DEMO_TRAFFIC_HOST": settings.demo.traffic_host,
        "SYNAPSEOPS_DEMO_TRAFFIC_PORT": str(settings.demo.traffic_port),
        # Logs reach the log file as they happen, not when a buffer fills.
        "PYTHONUNBUFFERED": "1",
    }
    if settings.database.url is not None:
        shared["SYNAPSEOPS_DATABASE_URL"] = settings.database.url.get_secret_value()
    env.update(shared)
    return env


def platform_process(settings: Settings, name: str) -> ManagedProcess:
    command = [sys.executable, "-m", "synapseops.cli", name]
    alive: tuple[int, ...] = (200, 503)
    if name == "sandbox":
        host, port = settings.sandbox.host, settings.sandbox.port
        health, alive = f"{settings.sandbox.url}/_sandbox/health", (200,)
    elif name == "worker":
        host, port = settings.worker.metrics_host, settings.worker.metrics_port
        health = f"http://{host}:{port}/health"
    elif name == "loader":
        host, port = settings.loader.metrics_host, settings.loader.metrics_port
        health = f"http://{host}:{port}/health"
    elif name == "api":
        host, port = settings.api.host, settings.api.port
        health = f"{settings.api.url}/health"
    elif name == "traffic":
        host, port = settings.demo.traffic_host, settings.demo.traffic_port
        health, alive = f"http://{host}:{port}/metrics", (200,)
    else:
        raise ConfigurationError(f"no platform process named {name}")
    return ManagedProcess(
        name,
        command,
        data_dir=settings.data_dir,
        health_url=health,
        alive_statuses=alive,
        port=(host, port),
    )


class LocalStack:
    def __init__(self, settings: Settings, *, cache_dir: Path | None = None) -> None:
        self.settings = settings
        self.broker = LocalBroker(settings, cache_dir=cache_dir)
        self.postgres = LocalPostgres(settings)
        self.processes = {name: platform_process(settings, name) for name in PROCESSES}

    def up(self, only: Collection[str] | None = None) -> list[ServiceStatus]:
        """Start what is down, in order; raises ConfigurationError at the first part that fails."""
        env = child_environment(self.settings)
        for step in parse_steps(only):
            log.info("up: %s", step, extra={"step": step})
            if step == "kafka":
                self.broker.start()
            elif step == "postgres":
                self.postgres.start()
            elif step == "migrate":
                self.postgres.migrate()
            elif step == "topics":
                self._apply_topics()
            else:
                self.processes[step].start(env, timeout=START_TIMEOUT_S[step])
        return self.status()

    def _apply_topics(self) -> None:
        try:
            from topics.admin import apply_topics
        except ImportError as exc:
            raise ConfigurationError(f"the topic registry cannot be applied: {exc}") from exc
        apply_topics(self.settings)

    def down(self, only: Collection[str] | None = None) -> None:
        """Stop the long-running parts in reverse order (a broker that is not ours is kept).

        Without ``only`` everything goes, the demo's traffic included.
        """
        for step in reversed(parse_steps(only) if only else list(STEPS)):
            if step in self.processes:
                self.processes[step].stop()
            elif step == "postgres":
                self.postgres.stop()
            elif step == "kafka":
                self.broker.stop()

    def status(self) -> list[ServiceStatus]:
        rows = [
            ServiceStatus("kafka", self.broker.pid(), self.broker.healthy(timeout=2.0)),
            ServiceStatus("postgres", self.postgres.pid(), self.postgres.healthy()),
        ]
        for name in PROCESSES:
            process = self.processes[name]
            if name == "traffic" and process.pid() is None:
                continue  # optional: listed only while it runs
            rows.append(ServiceStatus(name, process.pid(), process.healthy()))
        return rows
