"""``synapseops loader`` as a subprocess of a test, on a topic and group of the test's own.

The worker's test harness with another command and environment: health, ``kill -9`` and stop
are the same.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.integration.worker_process import CLI, WorkerProcess, free_port


class LoaderProcess(WorkerProcess):
    def __init__(
        self, kafka_bootstrap: str, database: str, data_dir: Path, *, topic: str, group_id: str
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "loader.log"
        self.env = {
            **os.environ,
            "SYNAPSEOPS_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "SYNAPSEOPS_DATABASE_URL": database,
            "SYNAPSEOPS_LOADER_TOPIC": topic,
            "SYNAPSEOPS_LOADER_GROUP_ID": group_id,
            "SYNAPSEOPS_LOADER_METRICS_PORT": str(self.port),
            "SYNAPSEOPS_DATA_DIR": str(data_dir),
            "SYNAPSEOPS_ENV": "dev",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(CLI), "loader"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
