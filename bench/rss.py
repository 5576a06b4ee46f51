"""``python -m bench rss [--minutes M] [--rate R]``: a worker's resident memory over a run.

One ``synapseops worker`` (event log and payment settlement, a fresh database, the sandbox's
finance ledger) under steady traffic for ``--minutes`` (default 10, the run issue 10 names;
``--minutes 2`` for a quick look): ``--rate`` events/s, half generic inbound events, half
Stripe ``payment_intent.succeeded``.
Its RSS (``VmRSS``) is sampled every 5 s. *Steady* is the median after the first minute (or
the first third of a shorter run: imports, group join, pools and caches filling); *growth* is
the last minute's median over the minute after warm-up's. At the end every payment is checked
in the ledger once (the worker kept up and lost nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from uuid import uuid4

import httpx
from confluent_kafka import Producer

from bench import goals, rss_tracemalloc
from sandbox.harness import SandboxServer
from synapseops import headers as h
from synapseops.kafka import producer_config
from synapseops.settings import RetrySettings, Settings
from tests.integration.databases import fresh_database
from tests.integration.payments.factory import PaymentFactory
from tests.integration.payments.test_payments_chaos import start_groups_at_end
from tests.integration.worker_process import WorkerProcess
from topics.admin import apply_topics
from topics.registry import INBOUND_EVENTS, STRIPE_EVENTS

TIERS = "1s,2s,3s"
SAMPLE_S = 5.0


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _inbound(producer: Producer, run: str, n: int) -> None:
    headers = [
        (h.EVENT_ID, f"evt_{run}_{n}".encode()),
        (h.SOURCE, f"bench-{run}".encode()),
        (h.RECEIVED_AT, b"2026-01-02T03:04:05.000Z"),
        (h.CONTENT_TYPE, b"application/json"),
    ]
    body = json.dumps({"n": n, "run": run, "pad": "x" * 800}).encode()
    producer.produce(INBOUND_EVENTS.name, body, key=f"k{n % 97}".encode(), headers=headers)


def _payment(producer: Producer) -> str:
    payment = PaymentFactory(amount=4200)
    event = payment.succeeded()
    producer.produce(
        STRIPE_EVENTS.name,
        event.body,
        key=event.key.encode(),
        headers=event.headers(),  # type: ignore[arg-type]
    )
    return payment.charge_settlement


def run(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench rss")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument(
        "--tracemalloc", type=Path, help="trace the worker's heap into DIR (bench.rss_tracemalloc)"
    )
    options, _ = parser.parse_known_args(list(argv))
    settings = Settings().model_copy(update={"retry": RetrySettings(tiers=TIERS)})
    apply_topics(settings)
    run_id, group = uuid4().hex[:8], f"bench-rss-{uuid4().hex[:8]}"
    start_groups_at_end(settings.kafka, group, TIERS)
    producer = Producer(producer_config(settings.kafka))
    samples: list[tuple[float, float]] = []  # (seconds since start, MB)
    sids: list[str] = []
    with (
        fresh_database(settings.database_url, "t_bench_rss") as database,
        SandboxServer() as sandbox,
        TemporaryDirectory() as data_dir,
    ):
        env = {
            "SYNAPSEOPS_LOG_LEVEL": "WARNING",
            "SYNAPSEOPS_WORKER_PIPELINES": "event-log,payment-settlement",
            "SYNAPSEOPS_PAYMENTS_FINANCE_URL": f"{sandbox.url}/finance",
        }
        if options.tracemalloc is not None:
            moments = (120.0, options.minutes * 30, options.minutes * 60 - 15)
            env |= rss_tracemalloc.environment(options.tracemalloc.resolve(), moments)
        worker = WorkerProcess(
            settings.kafka.bootstrap, database, Path(data_dir), tiers=TIERS, group_id=group,
            extra_env=env,
        )  # fmt: skip
        worker.start()
        try:
            worker.wait_healthy()
            assert worker.process is not None
            pid, started, sent = worker.process.pid, time.monotonic(), 0
            next_sample = started
            while (now := time.monotonic()) < started + options.minutes * 60:
                due = int((now - started) * options.rate)
                for n in range(sent, due):
                    if n % 2:
                        sids.append(_payment(producer))
                    else:
                        _inbound(producer, run_id, n)
                sent = max(sent, due)
                producer.poll(0)
                if now >= next_sample:
                    samples.append((now - started, _rss_mb(pid)))
                    next_sample += SAMPLE_S
                time.sleep(0.05)
            producer.flush(60)
            _wait_booked(sandbox.url, sids, time.monotonic() + 300)
        finally:
            worker.stop()
    _report(samples, options.minutes, sent)
    if options.tracemalloc is not None:
        rss_tracemalloc.report(options.tracemalloc.resolve())


def _wait_booked(sandbox_url: str, sids: list[str], deadline: float) -> None:
    while True:
        entries = httpx.get(f"{sandbox_url}/_sandbox/finance/ledger", timeout=120).json()
        booked = Counter(str(e["key"]) for e in entries["entries"])
        missing = [sid for sid in sids if booked[sid] == 0]
        if not missing:
            twice = sum(1 for sid in sids if booked[sid] > 1)
            _say(f"  {len(sids):,} payments in the ledger, {twice} booked twice")
            return
        if time.monotonic() > deadline:
            _say(f"  {len(missing):,} of {len(sids):,} payments not in the ledger by the deadline")
            return
        time.sleep(2)


def _at(samples: list[tuple[float, float]], second: float) -> float | None:
    """The sample nearest ``second`` (None past the run's end)."""
    if second > samples[-1][0] + SAMPLE_S:
        return None
    return min(samples, key=lambda sample: abs(sample[0] - second))[1]


def _report(samples: list[tuple[float, float]], minutes: float, sent: int) -> None:
    if len(samples) < 3:
        _say("too few samples")
        return
    warm = min(60.0, minutes * 60 / 3)
    steady_values = [mb for at, mb in samples if at >= warm]
    window = min(60.0, (samples[-1][0] - warm) / 2)
    early = [mb for at, mb in samples if warm <= at < warm + window]
    half = samples[-1][0] / 2
    middle = [mb for at, mb in samples if half - window / 2 <= at < half + window / 2]
    late = [mb for at, mb in samples if at >= samples[-1][0] - window]
    steady, peak = statistics.median(steady_values), max(mb for _, mb in samples)
    growth = statistics.median(late) / statistics.median(early) - 1
    second_half = statistics.median(late) / statistics.median(middle) - 1
    _say(
        f"worker RSS over {minutes:g} min, {sent:,} events: start {samples[0][1]:.0f} MB, "
        f"steady (median after {warm:.0f} s) {steady:.0f} MB, peak {peak:.0f} MB, "
        f"end {samples[-1][1]:.0f} MB; growth {growth:+.1%} (last {window:.0f} s vs the first "
        f"{window:.0f} s after warm-up), {second_half:+.1%} over the second half"
    )
    marks = [(m, _at(samples, m * 60)) for m in (0, 1, 5, 10, 15, 20, 30, 60) if m <= minutes]
    _say("  at minute: " + ", ".join(f"{m}: {mb:.0f} MB" for m, mb in marks if mb is not None))
    _say("  samples (s: MB): " + ", ".join(f"{at:.0f}: {mb:.0f}" for at, mb in samples[::6]))
    goals.measured("rss", f"{steady:.0f} MB steady, peak {peak:.0f} MB", steady <= 300)
    # Over the second half: the first minutes fill pools, caches and the allocator's arenas
    # (a 30-minute run rose until ~12 min, then held flat); what is left is a leak or not.
    goals.measured(
        "rss-growth",
        f"{second_half:+.1%} 2nd half of {minutes:g} min ({growth:+.1%} from {warm:.0f} s)",
        second_half <= 0.10,
    )
