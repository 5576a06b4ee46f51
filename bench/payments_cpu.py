"""Where the settlement stage's CPU goes while ``bench payments`` drains its topic: the workers,
PostgreSQL (the whole cluster: every backend and its background processes) and this process
(the in-process sandbox ledger; the producer is done before the workers start), sampled from
``/proc`` beside the count of settled entries, so the figures span the same window as the
settlements/s (first entry settled to the last).

With ``SYNAPSEOPS_BENCH_PYSPY=DIR`` each worker is sampled by py-spy from outside (collapsed
stacks in DIR/payments-<n>w-<i>.txt; ``python -m bench.peers.stacks`` sums them by part).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy
from sqlalchemy import text

from bench.peers.measure import ProcessTree
from topics.registry import PAYMENT_SETTLEMENT


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic seconds
    settled: int
    workers: float  # CPU seconds so far
    postgres: float
    sandbox: float


@dataclass(frozen=True)
class Window:
    """CPU seconds per 1,000 settlements of each part, between two samples."""

    settled: int
    seconds: float
    workers: float
    postgres: float
    sandbox: float

    def line(self) -> str:
        return (
            f"  CPU-seconds per 1,000 settlements: worker(s) {self.workers:.2f}, "
            f"PostgreSQL {self.postgres:.2f}, sandbox ledger {self.sandbox:.2f} "
            f"(over {self.settled:,} settlements in {self.seconds:.1f} s)"
        )


def postmaster_pid(engine: sqlalchemy.Engine) -> int:
    """The cluster's postmaster (its ``postmaster.pid``, first line); the bench runs as its
    owner or root, like the local stack that started it."""
    with engine.connect() as conn:
        folder = conn.execute(text("SHOW data_directory")).scalar_one()
    return int((Path(folder) / "postmaster.pid").read_text().split()[0])


class Sampler:
    """CPU of the workers, the cluster and this process, beside a count of settled entries."""

    def __init__(self, worker_pids: Sequence[int], postmaster: int) -> None:
        self.workers = [ProcessTree(pid) for pid in worker_pids]
        self.postgres = ProcessTree(postmaster)
        self.samples: list[Sample] = []

    def sample(self, settled: int) -> None:
        self.samples.append(
            Sample(
                time.monotonic(),
                settled,
                sum(tree.sample() for tree in self.workers),
                self.postgres.sample(),
                time.process_time(),
            )
        )

    def window(self) -> Window | None:
        """From the last sample with nothing settled to the first with everything settled."""
        if len(self.samples) < 2:
            return None
        goal = self.samples[-1].settled
        first = max((s for s in self.samples if s.settled == 0), key=lambda s: s.at, default=None)
        last = next(s for s in self.samples if s.settled >= goal)
        first = first or self.samples[0]
        done = last.settled - first.settled
        if done <= 0:
            return None
        per = 1000.0 / done
        return Window(
            done,
            last.at - first.at,
            (last.workers - first.workers) * per,
            (last.postgres - first.postgres) * per,
            (last.sandbox - first.sandbox) * per,
        )


def batch_sizes(metrics: Callable[[], str]) -> tuple[float, float]:
    """(batches, records per batch) of the settlement pipeline, as a worker counted them."""
    try:
        lines = metrics().splitlines()
    except httpx.HTTPError:
        return 0.0, 0.0
    figures: dict[str, float] = {}
    for line in lines:
        if line.startswith("synapseops_road_batch_records_") and PAYMENT_SETTLEMENT in line:
            name, _, value = line.rpartition(" ")
            figures[name.split("{")[0].rsplit("_", 1)[1]] = float(value)
    count, total = figures.get("count", 0.0), figures.get("sum", 0.0)
    return count, (total / count if count else 0.0)


def profilers(pids: Sequence[int], label: str) -> list[subprocess.Popen[bytes]]:
    """py-spy on each worker with ``SYNAPSEOPS_BENCH_PYSPY=DIR`` (else none)."""
    folder = os.environ.get("SYNAPSEOPS_BENCH_PYSPY")
    if not folder:
        return []
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        need = f"{sys.executable} -m pip install py-spy"
        raise SystemExit(f"SYNAPSEOPS_BENCH_PYSPY needs py-spy: {need}")
    Path(folder).mkdir(parents=True, exist_ok=True)
    started = []
    for index, pid in enumerate(pids):
        argv = [str(spy), "record", "--pid", str(pid), "--format", "raw", "--threads"]
        argv += ["--rate", "100", "--nonblocking", "--output", f"{folder}/{label}-{index}.txt"]
        started.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return started


def stop_profilers(running: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in running:
        process.send_signal(2)  # SIGINT: py-spy writes its file and exits
    for process in running:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"
