"""Payment Gateway figures: settlements per second from a pre-filled topic to the ledger, with
one worker and with two in one group, p99 event→ledger, and PostgreSQL round trips.

``python -m bench payments [--events N] [--workers 1,2] [--stage N]``

1. **Settlement stage, in process**: ``--stage`` events (default 5,000) through the gateway's
   batch handler via the road's :func:`~streams.road.batch.process_batch`, 500 at a time, and
   100 through the per-record handler: settlements/s and PostgreSQL round trips per settlement
   of each (statements, BEGIN/COMMIT, pool pings; SQLAlchemy event hooks).
2. **Workers**: for each worker count, ``--events`` ``payment_intent.succeeded`` events (one new
   payment each, default 20,000) are produced to ``payments.stripe.events`` *before* the
   ``synapseops worker`` subprocesses (one consumer group, payments pipeline only) start against
   a throwaway database and an in-process sandbox ledger. Throughput = settlements between the
   first and the last ledger entry / that span; every payment is checked to have exactly one
   ledger entry. Then events are paced at half that rate for 10 s: p50/p99 of the ledger
   entry's time minus the event's ``synapseops-received-at``, and how much of it was spent
   until the event's batch was decided. Beside the rate: CPU-seconds per 1,000
   settlements of the worker(s), PostgreSQL and the sandbox ledger, the batches the workers
   saw, the load average (:mod:`bench.payments_cpu`; ``SYNAPSEOPS_BENCH_PYSPY=DIR`` profiles).

Prints figures; asserts nothing about time (the exactly-once check does fail loudly).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from uuid import uuid4

import httpx
import sqlalchemy
from confluent_kafka import Producer
from sqlalchemy import func, select, text

from bench import goals
from bench.payments_cpu import (
    Sampler,
    batch_sizes,
    load_average,
    postmaster_pid,
    profilers,
    stop_profilers,
)
from sandbox.harness import SandboxServer
from sinks.payments.tables import settlements
from streams.bootstrap import Runtime
from streams.payments.pipeline import build_gateway
from streams.road import Outcome, Pipeline, RoadRecord
from streams.road.batch import process_batch
from synapseops.kafka import producer_config
from synapseops.settings import PaymentSettings, RetrySettings, Settings
from tests.integration.databases import fresh_database
from tests.integration.payments.factory import PaymentFactory
from tests.integration.payments.round_trips import round_trips
from tests.integration.payments.test_payments_chaos import start_groups_at_end
from tests.integration.worker_process import WorkerProcess
from topics.admin import apply_topics
from topics.registry import PAYMENT_SETTLEMENT, STRIPE_EVENTS

TIERS = "1s,2s,3s"
PACED_S = 10.0  # how long events are paced at half the rate, for event→ledger latency
BATCH = 500
DEADLINE_S = 1800.0


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _records(count: int) -> tuple[list[RoadRecord], list[str]]:
    records, sids = [], []
    for offset in range(count):
        payment = PaymentFactory(amount=4200)
        event = payment.succeeded()
        records.append(
            RoadRecord(
                STRIPE_EVENTS.name,
                offset % 6,
                offset,
                int(time.time() * 1000),
                event.key.encode(),
                event.body,
                event.headers(),
            )
        )
        sids.append(payment.charge_settlement)
    return records, sids


def stage(settings: Settings, count: int) -> None:
    """The set-based stage alone: batches through process_batch, and records one by one."""
    with (
        fresh_database(settings.database_url, "t_payments") as database,
        SandboxServer() as sandbox,
    ):
        local = settings.model_copy(
            update={"payments": PaymentSettings(finance_url=f"{sandbox.url}/finance")}
        )
        engine = sqlalchemy.create_engine(database, pool_pre_ping=True)
        runtime = Runtime.build(local, engine)
        gateway = build_gateway(local, runtime)
        pipeline = Pipeline.declared(
            PAYMENT_SETTLEMENT, gateway.handlers, local, batch_handlers=gateway.batch_handlers
        )
        alone, _ = _records(100)
        batched, sids = _records(count)
        loop = asyncio.new_event_loop()
        try:
            with round_trips(engine) as single:
                started = time.perf_counter()
                for record in alone:
                    loop.run_until_complete(gateway.event(record))
                single_s = time.perf_counter() - started
            with round_trips(engine) as together:
                started = time.perf_counter()
                for at in range(0, count, BATCH):
                    chunk = batched[at : at + BATCH]
                    results = loop.run_until_complete(
                        process_batch(pipeline, chunk, runtime.router)
                    )
                    assert all(isinstance(r, Outcome) and r.status == "done" for r in results)
                batch_s = time.perf_counter() - started
            entries = httpx.get(f"{sandbox.url}/_sandbox/finance/ledger", timeout=60).json()
            _exactly_once(entries["entries"], sids)
        finally:
            loop.run_until_complete(gateway.finance.aclose())
            loop.close()
            runtime.producer.close()
            engine.dispose()
    _say(
        f"stage, record by record    {len(alone) / single_s:8.1f} settlements/s   "
        f"{single[0] / len(alone):6.2f} PostgreSQL round trips per settlement"
    )
    _say(
        f"stage, batches of {BATCH}      {count / batch_s:8.1f} settlements/s   "
        f"{together[0] / count:6.2f} PostgreSQL round trips per settlement ({count} events)"
    )


def _produce(settings: Settings, count: int, pace_s: float = 0.0) -> dict[str, datetime]:
    """``count`` new payments' ``payment_intent.succeeded`` events; paced (``pace_s`` apart,
    open loop: each at its scheduled moment) or as fast as they go. Every event is built
    before the first is sent, so building them (~0.2 ms each) does not take CPU from the
    workers while they are measured; only the ingress headers are stamped at the send."""
    producer = Producer(producer_config(settings.kafka))
    built = []
    for _ in range(count):
        payment = PaymentFactory(amount=4200)
        event = payment.succeeded()
        built.append((payment.charge_settlement, event, event.body, event.key.encode()))
    sent: dict[str, datetime] = {}
    start = time.monotonic()
    for n, (settlement, event, body, key) in enumerate(built):
        ahead = start + n * pace_s - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        received = datetime.now().astimezone()
        producer.produce(
            STRIPE_EVENTS.name,
            body,
            key=key,
            headers=event.headers(received),  # type: ignore[arg-type]
        )
        producer.poll(0)
        sent[settlement] = received
    producer.flush(120)
    return sent


def _wait_settled(
    engine: sqlalchemy.Engine, goal: int, sampler: Sampler | None = None, every_s: float = 1.0
) -> None:
    deadline = time.monotonic() + DEADLINE_S
    query = select(func.count()).where(settlements.c.state == "settled")
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            settled = conn.execute(query).scalar_one()
        if sampler is not None:
            sampler.sample(settled)
        if settled >= goal:
            return
        time.sleep(every_s)
    raise TimeoutError(f"fewer than {goal} settlements settled by the deadline")


def _exactly_once(entries: list[dict[str, object]], sids: Sequence[str]) -> None:
    booked = Counter(str(e["key"]) for e in entries)
    missing = [sid for sid in sids if booked[sid] == 0]
    twice = [sid for sid in sids if booked[sid] > 1]
    if missing or twice:
        raise AssertionError(f"{len(missing)} settlements missing, {len(twice)} booked twice")


def workers(settings: Settings, count: int, how_many: int) -> float:
    """Settlements/s of ``how_many`` workers from a pre-filled topic (printed, returned)."""
    kafka = settings.kafka
    group = f"bench-payments-{uuid4().hex[:8]}"
    start_groups_at_end(kafka, group, TIERS)
    sent = _produce(settings, count)  # the topic is full before any worker starts
    with (
        fresh_database(settings.database_url, "t_payments") as database,
        SandboxServer() as sandbox,
        TemporaryDirectory() as data_dir,
    ):
        engine = sqlalchemy.create_engine(database)
        env = {
            "SYNAPSEOPS_LOG_LEVEL": "WARNING",
            "SYNAPSEOPS_WORKER_PIPELINES": "payment-settlement",
            "SYNAPSEOPS_PAYMENTS_FINANCE_URL": f"{sandbox.url}/finance",
        }
        pool = [
            WorkerProcess(
                kafka.bootstrap,
                database,
                Path(data_dir) / str(n),
                tiers=TIERS,
                group_id=group,
                extra_env=env,
            )
            for n in range(how_many)
        ]
        for worker in pool:
            worker.log_path.parent.mkdir(parents=True, exist_ok=True)
            worker.start()
        spies: list[subprocess.Popen[bytes]] = []
        try:
            pids = [worker.process.pid for worker in pool if worker.process is not None]
            sampler = Sampler(pids, postmaster_pid(engine))
            spies = profilers(pids, f"payments-{how_many}w")
            for worker in pool:
                worker.wait_healthy()
            _say(f"  {how_many} worker(s) healthy; {load_average()}")
            _wait_settled(engine, count, sampler, every_s=0.25)
            stop_profilers(spies)
            cpu = sampler.window()
            batches = [batch_sizes(worker.metrics) for worker in pool]
            entries = _ledger(sandbox)
            _exactly_once(entries, list(sent))
            times = sorted(datetime.fromisoformat(str(e["created_at"])) for e in entries)
            span = (times[-1] - times[0]).total_seconds()
            rate = (len(times) - 1) / span if span > 0 else float("nan")
            paced_n = max(100, int(rate / 2 * PACED_S))
            paced = _produce(settings, paced_n, pace_s=2.0 / rate)
            _wait_settled(engine, count + paced_n)
            paced_entries = _ledger(sandbox)
            decided = _decided_at(engine)
        finally:
            stop_profilers(spies)
            for worker in pool:
                worker.stop()
            engine.dispose()
    at = {str(e["key"]): datetime.fromisoformat(str(e["created_at"])) for e in paced_entries}
    latencies = sorted((at[k] - paced[k]).total_seconds() for k in paced if k in at)
    waits = sorted((decided[k] - paced[k]).total_seconds() for k in paced if k in decided)
    _say(
        f"{how_many} worker(s), one group   {rate:8.1f} settlements/s   "
        f"{count} pre-filled events, each exactly once in the ledger; {load_average()}"
    )
    if cpu is not None:
        _say(cpu.line())
    for index, (how_many_batches, size) in enumerate(batches):
        _say(f"  worker {index}: {how_many_batches:,.0f} batches, {size:,.1f} records each")
    if latencies:
        _say(
            f"  event→ledger at {rate / 2:.0f}/s     p50 {_ms(statistics.median(latencies))}  "
            f"p99 {_ms(_p99(latencies))} ({len(latencies)} paced events, {PACED_S:.0f} s)"
        )
        _say(
            f"    of which until its batch was decided: p50 {_ms(statistics.median(waits))}  "
            f"p99 {_ms(_p99(waits))} (the rest: finance and the record transaction)"
        )
        if how_many == 1:
            p99 = _p99(latencies)
            goals.measured("settle-p99", f"{_ms(p99)} at {rate / 2:,.0f}/s", p99 <= 0.25)
    return rate


def _decided_at(engine: sqlalchemy.Engine) -> dict[str, datetime]:
    """When each settlement's event was decided: its decide transaction's start (``now()``)."""
    query = text(
        "SELECT s.settlement_id, e.stored_at FROM settlements s "
        "JOIN payment_events e ON e.settlement_id = s.settlement_id"
    )
    with engine.connect() as conn:
        return {str(sid): at for sid, at in conn.execute(query)}


def _ledger(sandbox: SandboxServer) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = httpx.get(
        f"{sandbox.url}/_sandbox/finance/ledger", timeout=120
    ).json()["entries"]
    return entries


def run(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench payments")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--stage", type=int, default=5_000)
    options = parser.parse_args(list(argv))
    base = Settings()
    settings = base.model_copy(update={"retry": RetrySettings(tiers=TIERS)})
    apply_topics(settings)
    if options.stage:
        stage(settings, options.stage)
    rates: dict[int, float] = {}
    for how_many in (int(n) for n in options.workers.split(",") if n.strip()):
        rates[how_many] = workers(settings, options.events, how_many)
    if 1 in rates:
        goals.measured("settle-1", f"{rates[1]:,.0f}/s", rates[1] >= 2000)
    if 1 in rates and 2 in rates:
        scale = rates[2] / rates[1]
        goals.measured("settle-2", f"{scale:.2f}x ({rates[2]:,.0f}/s)", scale >= 1.7)


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


if __name__ == "__main__":
    run(sys.argv[1:])
