"""Run every row against the same pre-produced input, one peer process at a time.

Per row: a fresh output topic and group; the peer starts; every 0.1 s the harness reads the
output topic's end offsets and the peer's CPU from ``/proc``. The figures span from the first
sample that saw output to the first that saw all of it, so start-up (imports, group join) is not
counted for anyone. Then the peer is stopped (SIGTERM) and its output read back and verified.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.peers.expected import expected_digests
from bench.peers.kafka_io import TopicWatch, create_topics, delete_topics, produce_all, read_into
from bench.peers.measure import ProcessTree
from bench.peers.orders import orders
from bench.peers.rows import NotBuilt, Row, RowContext
from bench.peers.verify import OutputCheck, Verdict
from bench.peers.work import order_mapper
from synapseops.settings import Settings

SAMPLE_S = 0.1
SETTLE_S = 1.0  # after the last expected record: anything doubled still arriving is caught


@dataclass(frozen=True)
class Figures:
    rate: float  # output records per second
    cpu_per_million: float  # CPU seconds per million records
    peak_rss: int  # bytes
    system_share: float  # of the CPU, the part spent in the kernel


@dataclass(frozen=True)
class Result:
    row: Row
    figures: Figures | None = None
    verdict: Verdict | None = None
    note: str = ""


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class Bench:
    settings: Settings
    count: int
    partitions: int
    run_id: str
    expected: dict[bytes, bytes]
    mapping_us: float  # CPU µs the mapping alone takes per order, on one core

    @property
    def input_topic(self) -> str:
        return f"bench.peers.{self.run_id}.orders"

    def run_row(self, row: Row, timeout_s: float) -> Result:
        kafka = self.settings.kafka
        output = f"bench.peers.{self.run_id}.{row.key}"
        work_dir = self.settings.data_dir / "bench" / "peers" / "runs" / self.run_id / row.key
        work_dir.mkdir(parents=True, exist_ok=True)
        ctx = RowContext(
            bootstrap=kafka.bootstrap,
            input_topic=self.input_topic,
            output_topic=output,
            group=f"bench-peers-{self.run_id}-{row.key}",
            count=self.count,
            work_dir=work_dir,
            data_dir=self.settings.data_dir,
            database_url=self.settings.database_url,
        )
        create_topics(kafka, [output], self.partitions)
        try:
            try:
                process = row.start(ctx)
            except NotBuilt as exc:
                return Result(row, note=str(exc))
            try:
                profiler = _profiler(process, row)
            except BaseException:
                stop_process(process)  # else the peer runs on beside every later row
                raise
            figures, note = self._measure(process, output, timeout_s, launcher=row.launcher)
            if profiler is not None:
                profiler.wait(timeout=60)
            check = OutputCheck(self.expected)
            read_into(kafka, output, self.partitions, check)
            batches = work_dir / "batch_sizes.txt"  # written by a peer that counts batches
            if batches.exists():
                note = "; ".join(part for part in (note, batches.read_text()) if part)
            return Result(row, figures, check.verdict(), note)
        finally:
            delete_topics(kafka, [output])

    def _measure(
        self, process: subprocess.Popen[bytes], output: str, timeout_s: float, *, launcher: bool
    ) -> tuple[Figures | None, str]:
        tree = ProcessTree(process.pid, root_rss=not launcher)
        watch = TopicWatch(self.settings.kafka, output, self.partitions)
        first: Sample | None = None  # the first sample that saw output
        grown: Sample | None = None  # the latest sample that saw more than the one before
        done: Sample | None = None  # the first sample that saw every expected record
        note = ""
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                now = time.monotonic()
                sample = Sample(now, watch.count(), tree.sample(), tree.system)
                if sample.seen and first is None:
                    first = sample
                if grown is None or sample.seen > grown.seen:
                    grown = sample
                if done is None and sample.seen >= self.count:
                    done = sample
                if done is not None and now - grown.at >= SETTLE_S:
                    break
                if process.poll() is not None:
                    note = f"peer exited with {process.returncode} (see its log)"
                    break
                if now > deadline:
                    note = f"gave up after {timeout_s:.0f}s at {sample.seen:,} records"
                    break
                time.sleep(SAMPLE_S)
        finally:
            watch.close()
            stop_process(process)
        end = done or grown
        if first is None or end is None or end.seen <= first.seen:
            return None, note or "no output"
        records = end.seen - first.seen
        rate, cpu = records / (end.at - first.at), end.cpu - first.cpu
        system = (end.system - first.system) / cpu if cpu else 0.0
        return Figures(rate, cpu / records * 1e6, tree.peak_rss, system), note


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic seconds
    seen: int  # records in the output topic
    cpu: float  # CPU seconds of the peer so far
    system: float  # of which in the kernel


def _profiler(process: subprocess.Popen[bytes], row: Row) -> subprocess.Popen[bytes] | None:
    """With ``SYNAPSEOPS_BENCH_PYSPY=DIR``: py-spy samples the peer from outside (its CPU is not
    the peer's) and writes collapsed stacks, one line per stack and thread, to DIR/<row>.txt."""
    folder = os.environ.get("SYNAPSEOPS_BENCH_PYSPY")
    if not folder:
        return None
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit(
            f"SYNAPSEOPS_BENCH_PYSPY needs py-spy: {sys.executable} -m pip install py-spy"
        )
    Path(folder).mkdir(parents=True, exist_ok=True)
    argv = [str(spy), "record", "--pid", str(process.pid), "--format", "raw", "--threads"]
    argv += ["--subprocesses"]  # a peer may run its work in a child (the SynapseOps worker)
    argv += ["--rate", "200", "--nonblocking", "--output", f"{folder}/{row.key}.txt"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def prepare(settings: Settings, count: int, partitions: int) -> Bench:
    """The expected output (cached), the input topic, and the input produced once."""
    run_id = uuid.uuid4().hex[:8]
    runs = settings.data_dir / "bench" / "peers" / "runs"
    shutil.rmtree(runs, ignore_errors=True)  # only the last run's logs are kept
    started = time.monotonic()
    expected = expected_digests(count, settings.data_dir / "bench" / "peers")
    _say(f"expected output of {count:,} orders ready in {time.monotonic() - started:.1f}s")
    bench = Bench(settings, count, partitions, run_id, expected, mapping_cost())
    create_topics(settings.kafka, [bench.input_topic], partitions)
    started = time.monotonic()
    produced = produce_all(settings.kafka, bench.input_topic, orders(0, count))
    _say(
        f"input: {produced:,} orders on {bench.input_topic} ({partitions} partitions) "
        f"produced in {time.monotonic() - started:.1f}s"
    )
    return bench


def mapping_cost(samples: int = 600, rounds: int = 5) -> float:
    """CPU µs per order of the shared mapping function alone (what no runtime can save): the
    best of a few rounds, since a busy machine only ever adds to it."""
    map_order = order_mapper()
    values = [value for _, value in orders(0, samples)]
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for value in values:
            map_order(value)
        best = min(best, time.process_time() - started)
    return best / samples * 1e6


def finish(bench: Bench) -> None:
    delete_topics(bench.settings.kafka, [bench.input_topic])
