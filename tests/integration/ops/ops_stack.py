"""A whole running stack for the ops tests: the real API, worker, warehouse loader and sandbox
as subprocesses.

On the session's broker and PostgreSQL server, with a database of its own (the dead-letter
gauges count the whole ``dead_letters`` table: other tests' rows must not show) and a worker
group of its own that starts at the topics' ends (other tests' records are not its work).
Every process runs ``synapseops <process>`` exactly as a user would, on free ports, with
1-second caches (dead-letter gauges, consumer lag, health) so a scrape sees a change within
a scrape or two, and retry tiers of 1, 2 and 3 s. The worker's market feed sends 2 ticks a
second (Data Aggregation has traffic of its own from the start). The loader has a group of
its own too, and starts at the canonical topic's end: its offsets are stored in the
warehouse (where it reads them) and committed to Kafka (where the API reads its lag).

:meth:`OpsStack.targets` is what Prometheus scrapes, keyed by the ``process`` label of the
jobs in ``deploy/prometheus/prometheus.yml``. A new process is one more
:class:`ServedProcess` here and one more entry there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from pydantic import SecretStr

from sinks.aggregation.warehouse import Warehouse
from sinks.db import make_engine
from synapseops.settings import (
    ApiSettings,
    DatabaseSettings,
    KafkaSettings,
    RetrySettings,
    SandboxSettings,
    Settings,
)
from tests.integration.groups import TIERS, commit_at_end, topic_ends, worker_group_topics
from tests.integration.worker_process import CLI, WorkerProcess, free_port
from topics.admin import apply_topics
from topics.registry import CANONICAL_EVENTS

HEALTHY_WITHIN_S = 60.0


class ServedProcess:
    """``synapseops <command>`` as a subprocess, healthy once ``health_path`` answers 200."""

    def __init__(
        self, command: str, port: int, env: Mapping[str, str], log_path: Path, health_path: str
    ) -> None:
        self.command = command
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.env = dict(env)
        self.log_path = log_path
        self.health_url = f"http://{self.address}{health_path}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(CLI), self.command], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.command} exited: {self.log_tail()}")
            try:
                if httpx.get(self.health_url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        pytest.fail(f"{self.command} never answered {self.health_url} with 200: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def start_loader_at_end(stack: OpsStack) -> None:
    """The loader's stored offsets at the canonical topic's end (what other tests left there
    is not its work; it trusts ``warehouse.loader_offsets``, not Kafka), the same offsets
    committed for its group so its lag has a series from the start."""
    [ends] = topic_ends(stack.kafka, {CANONICAL_EVENTS.name}).values()
    engine = make_engine(stack.settings)
    try:
        offsets = {(CANONICAL_EVENTS.name, tp.partition): tp.offset for tp in ends}
        Warehouse(engine, stack.loader_group).load([], offsets)
    finally:
        engine.dispose()
    commit_at_end(stack.kafka, {stack.loader_group: [CANONICAL_EVENTS.name]})


class OpsStack:
    """Sandbox, worker and API of one test module (see the module doc)."""

    def __init__(self, kafka_bootstrap: str, database_url: str, data_dir: Path) -> None:
        self.kafka = KafkaSettings(bootstrap=kafka_bootstrap)
        self.group = f"t-ops-{uuid4().hex[:8]}"
        # Not under the worker's group id: the API watches the loader's group by default.
        self.loader_group = f"t-ops-loader-{uuid4().hex[:8]}"
        self.data_dir = data_dir
        self.database_url = database_url
        api_port, sandbox_port, smtp_port = free_port(), free_port(), free_port()
        loader_port = free_port()
        own = {
            "SYNAPSEOPS_ENV": "dev",
            "SYNAPSEOPS_LOG_LEVEL": "WARNING",
            "SYNAPSEOPS_DATA_DIR": str(data_dir),
            "SYNAPSEOPS_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "SYNAPSEOPS_DATABASE_URL": database_url,
            "SYNAPSEOPS_WORKER_GROUP_ID": self.group,
            "SYNAPSEOPS_API_PORT": str(api_port),
            "SYNAPSEOPS_SANDBOX_PORT": str(sandbox_port),
            "SYNAPSEOPS_SANDBOX_SMTP_PORT": str(smtp_port),
            "SYNAPSEOPS_PAYMENTS_FINANCE_URL": f"http://127.0.0.1:{sandbox_port}/finance",
            "SYNAPSEOPS_RETRY_TIERS": TIERS,
            "SYNAPSEOPS_OBSERVABILITY_DEAD_LETTER_GAUGES_CACHE_S": "1",
            "SYNAPSEOPS_OBSERVABILITY_LAG_CACHE_S": "1",
            "SYNAPSEOPS_OBSERVABILITY_HEALTH_CACHE_S": "1",
            # A task that dies stays down 2-4 s between restarts: several scrapes see it.
            "SYNAPSEOPS_SUPERVISION_BACKOFF_INITIAL_S": "2",
            "SYNAPSEOPS_SUPERVISION_BACKOFF_MAX_S": "4",
            "SYNAPSEOPS_AGGREGATION_TICKS_PER_S": "2",
            "SYNAPSEOPS_LOADER_GROUP_ID": self.loader_group,
            "SYNAPSEOPS_LOADER_METRICS_PORT": str(loader_port),
        }
        self.env = {**os.environ, **own}
        self.settings = Settings(
            env="dev",
            kafka=self.kafka,
            database=DatabaseSettings(url=SecretStr(database_url)),
            api=ApiSettings(port=api_port),
            sandbox=SandboxSettings(port=sandbox_port, smtp_port=smtp_port),
        )
        self.sandbox = ServedProcess(
            "sandbox", sandbox_port, self.env, data_dir / "sandbox.log", "/metrics"
        )
        self.api = ServedProcess("api", api_port, self.env, data_dir / "api.log", "/health")
        self.loader = ServedProcess(
            "loader", loader_port, self.env, data_dir / "loader.log", "/health"
        )
        self.worker = WorkerProcess(
            kafka_bootstrap,
            database_url,
            data_dir,
            tiers=TIERS,
            group_id=self.group,
            extra_env=own,
        )

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.sandbox.address}"

    @property
    def api_url(self) -> str:
        return f"http://{self.api.address}"

    def targets(self) -> dict[str, list[str]]:
        """``{process label: [host:port]}`` of what runs (deploy/prometheus/prometheus.yml)."""
        return {
            "api": [self.api.address],
            "worker": [f"127.0.0.1:{self.worker.port}"],
            "sandbox": [self.sandbox.address],
            "loader": [self.loader.address],
        }

    def start(self) -> OpsStack:
        apply_topics(self.settings.model_copy(update={"retry": RetrySettings(tiers=TIERS)}))
        commit_at_end(self.kafka, worker_group_topics(self.group))
        start_loader_at_end(self)
        self.sandbox.start()
        self.worker.start()
        self.api.start()
        self.loader.start()
        for process in (self.sandbox, self.worker, self.api, self.loader):
            process.wait_healthy()
        return self

    def stop(self) -> None:
        for process in (self.api, self.loader, self.worker, self.sandbox):
            process.stop()

    def restart_worker(self) -> None:
        if self.worker.process is None or self.worker.process.poll() is not None:
            self.worker.start()
        self.worker.wait_healthy()
