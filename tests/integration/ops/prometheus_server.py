"""A real Prometheus (Debian's ``prometheus`` binary) scraping a running test stack.

Its configuration is the product's own ``deploy/prometheus/prometheus.yml`` with three things
changed: every job's targets become the addresses of the stack's processes of that job's
``process`` label (a job for a process the stack does not run fails the start: a new process
in deploy/ must be started by the test stack too), the scrape and evaluation intervals
become ``interval_s`` (1 s), and the rule files are the ones given. It listens on a free
port of 127.0.0.1 and keeps its TSDB in the test's data folder; :meth:`stop` ends it.

The targets are served to Prometheus through ``file_sd_configs`` (one JSON file per process,
with the job's labels), so a test can add a process while Prometheus runs
(:meth:`PrometheusServer.set_targets`); Prometheus watches the files and scrapes the new
address within a second or two.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from synapseops.settings import PROJECT_ROOT
from tests.integration.worker_process import free_port

DEPLOY_CONFIG = PROJECT_ROOT / "deploy" / "prometheus" / "prometheus.yml"
READY_WITHIN_S = 30.0


class PrometheusError(AssertionError):
    """Prometheus refused a query, or did not come up."""


def render_config(
    targets_dir: Path, processes: Collection[str], rule_files: Sequence[Path], interval_s: float
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """``deploy/prometheus/prometheus.yml`` reading each job's targets from
    ``targets_dir/<process>.json``; and each process's static labels."""
    config: dict[str, Any] = yaml.safe_load(DEPLOY_CONFIG.read_text())
    interval = f"{interval_s:g}s"
    config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
    config["rule_files"] = [str(path) for path in rule_files]
    jobs, labels = [], {}
    for job in config["scrape_configs"]:
        statics = job.pop("static_configs", [])
        if not any("process" in static.get("labels", {}) for static in statics):
            continue  # Prometheus scraping itself in compose: not this one's business
        files = []
        for static in statics:
            process = static["labels"]["process"]
            if process not in processes:
                raise PrometheusError(
                    f"{DEPLOY_CONFIG.name} scrapes process {process!r} (job "
                    f"{job['job_name']}), which the test stack does not run; start it there"
                )
            labels[process] = dict(static["labels"])
            files.append(str(targets_dir / f"{process}.json"))
        job["file_sd_configs"] = [{"files": files, "refresh_interval": "1s"}]
        job["scrape_interval"] = interval
        job["scrape_timeout"] = interval
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config, labels


class PrometheusServer:
    """``prometheus`` as a subprocess; ``with`` starts and stops it."""

    def __init__(
        self,
        data_dir: Path,
        targets: Mapping[str, Sequence[str]],
        rule_files: Sequence[Path] = (),
        *,
        interval_s: float = 1.0,
    ) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusError(
                "no prometheus on PATH: run scripts/bootstrap-system.sh (apt: prometheus)"
            )
        self.binary = binary
        self.home = data_dir / "prometheus"
        self.targets_dir = self.home / "targets"
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        config, self._labels = render_config(self.targets_dir, targets, rule_files, interval_s)
        for process, addresses in targets.items():
            self.set_targets(process, addresses)
        self.config_path = self.home / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.home / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10.0)

    def set_targets(self, process: str, addresses: Sequence[str]) -> None:
        """Scrape ``addresses`` as ``process`` from now on (written whole, then renamed in, so
        Prometheus never reads half a file)."""
        if process not in self._labels:
            return  # deploy/ does not scrape it
        entry = [{"targets": list(addresses), "labels": self._labels[process]}]
        path = self.targets_dir / f"{process}.json"
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(entry))
        partial.replace(path)

    def start(self) -> PrometheusServer:
        argv = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.home / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=2h",
            "--log.level=warn",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_WITHIN_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited: {self.log_tail()}")
            try:
                if self.http.get("/-/ready").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise PrometheusError(f"prometheus not ready within {READY_WITHIN_S:g}s: {self.log_tail()}")

    def stop(self) -> None:
        self.http.close()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    # ---- the HTTP API ----------------------------------------------------------------------

    def _data(self, path: str, **params: Any) -> Any:
        answer = self.http.get(path, params=params).json()
        if answer.get("status") != "success":
            raise PrometheusError(
                f"{path} {params}: {answer.get('errorType')}: {answer.get('error')}"
            )
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (raises on a PromQL error)."""
        data = self._data("/api/v1/query", query=expr)
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr!r} is a {data['resultType']}, not an instant vector")
        result: list[dict[str, Any]] = data["result"]
        return result

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        params = {"match[]": match} if match else {}
        values: list[str] = self._data(f"/api/v1/label/{label}/values", **params)
        return values

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self._data("/api/v1/alerts")["alerts"]
        return alerts

    def rule_names(self) -> set[str]:
        groups = self._data("/api/v1/rules", type="alert")["groups"]
        return {rule["name"] for group in groups for rule in group["rules"]}

    def targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self._data("/api/v1/targets")["activeTargets"]
        return targets

    def wait_targets_up(self, within_s: float = 30.0) -> None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            targets = self.targets()
            if targets and all(t["health"] == "up" for t in targets):
                return
            time.sleep(0.5)
        down = [(t["labels"]["job"], t["scrapeUrl"], t["lastError"]) for t in self.targets()]
        raise PrometheusError(f"targets not all up within {within_s:g}s: {down}")
