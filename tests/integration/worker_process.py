"""Run ``synapseops worker`` for real, as a subprocess of a test, and wait for its health."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from synapseops.settings import PROJECT_ROOT

CLI = PROJECT_ROOT / ".venv/bin/synapseops"
HEALTHY_WITHIN_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """One worker process; ``start`` again after a ``kill`` to restart it with the same group."""

    def __init__(
        self,
        kafka_bootstrap: str,
        database: str,
        data_dir: Path,
        *,
        tiers: str = "1s,2s,3s",
        group_id: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "worker.log"
        self.env = {
            **os.environ,
            "SYNAPSEOPS_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "SYNAPSEOPS_DATABASE_URL": database,
            "SYNAPSEOPS_WORKER_GROUP_ID": group_id or f"t-worker-{uuid4().hex[:10]}",
            "SYNAPSEOPS_WORKER_METRICS_PORT": str(self.port),
            "SYNAPSEOPS_DATA_DIR": str(data_dir),
            "SYNAPSEOPS_ENV": "dev",
            "SYNAPSEOPS_RETRY_TIERS": tiers,
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(CLI), "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"worker exited with {self.process.returncode}"
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        pytest.fail("worker never answered /health with 200")

    def kill_9(self) -> None:
        """``kill -9``: no shutdown, no commit, nothing flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None

    def metrics(self) -> str:
        return httpx.get(f"{self.base}/metrics", timeout=5).text

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@contextmanager
def running_worker(
    kafka_bootstrap: str, database: str, data_dir: Path, **options: object
) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(kafka_bootstrap, database, data_dir, **options)  # type: ignore[arg-type]
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        print(worker.log_tail())
