"""Reliability-road figures on the real worker: does failing traffic slow the healthy path, and
how close to its due time does a retry tier start a record?

Setup: a throwaway database, an in-process sandbox ERP, one Shopify → ERP flow, and a real
``synapseops worker`` subprocess running only the ``integration-delivery`` pipeline (tiers
1s,2s,4s). For each failure rate (0 %, then 10 % of ERP calls answered 503 by the sandbox's
fault injection) N orders are produced to ``integration.events`` and the sandbox's attempt log
gives, per order, when its first try reached the ERP:

- healthy-path throughput = first tries that succeeded / span of all first tries;
- tier delay error = the worker's ``synapseops_road_tier_hold_lag_seconds`` (start minus
  not-before), p50/p99 estimated from the histogram buckets.

Before those rounds, :mod:`bench.road_throughput` prints the road alone: records/s of a
trivial pipeline, one worker, with the per-record agent of old and the micro-batch one.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy
from confluent_kafka import Consumer, TopicPartition
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from bench import road_throughput
from bench.integration import make_flow, order_text
from sandbox.harness import SandboxServer, free_port
from sinks.migrate import upgrade
from synapseops import headers as kh
from synapseops.kafka import AsyncProducer, consumer_config
from synapseops.settings import PROJECT_ROOT, DatabaseSettings, Settings
from topics.admin import apply_topics
from topics.registry import INTEGRATION_DELIVERY, INTEGRATION_EVENTS

ORDERS = int(os.environ.get("SYNAPSEOPS_BENCH_ORDERS", "600"))
TIERS = "1s,2s,4s"
CLI = PROJECT_ROOT / ".venv" / "bin" / "synapseops"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@contextmanager
def _worker(settings: Settings, database: str, key: str, sandbox_url: str) -> Iterator[str]:
    port = free_port()
    group = f"bench-road-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "SYNAPSEOPS_DATABASE_URL": database,
        "SYNAPSEOPS_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "SYNAPSEOPS_WORKER_GROUP_ID": group,
        "SYNAPSEOPS_WORKER_METRICS_PORT": str(port),
        "SYNAPSEOPS_WORKER_PIPELINES": INTEGRATION_DELIVERY,
        "SYNAPSEOPS_RETRY_TIERS": TIERS,
        "SYNAPSEOPS_CREDENTIALS_KEY": key,
        "SYNAPSEOPS_LOG_LEVEL": "INFO",
        # The flow's ERP is this bench's own sandbox, on a port of its own: the outbound guard
        # refuses internal addresses it was not told about (every order dead, TargetForbidden).
        "SYNAPSEOPS_HTTP_ALLOWED_HOSTS": urlsplit(sandbox_url).netloc,
    }
    log = (settings.data_dir / "logs").joinpath("bench-road-worker.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen([str(CLI), "worker"], env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _status(f"{base}/health") == 200, "worker health", 90)
        _wait(lambda: _lag(settings, group) == 0, "worker to catch up with older traffic", 600)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return 0


def _wait(condition: Any, what: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.5)


def _lag(settings: Settings, group: str) -> int:
    """Older records the worker still has to get through before the figures can start: on
    ``integration.events`` (its agent's group) and on the pipeline's tier topics."""
    tiers = tuple(f"{INTEGRATION_DELIVERY}.retry.{part}" for part in TIERS.split(","))
    return _group_lag(settings, group, (INTEGRATION_EVENTS.name,)) + _group_lag(
        settings, f"{group}.{INTEGRATION_DELIVERY}.tiers", tiers
    )


def _group_lag(settings: Settings, group: str, topics: tuple[str, ...]) -> int:
    consumer = Consumer(consumer_config(settings.kafka, group))
    try:
        parts = [TopicPartition(topic, p) for topic in topics for p in range(6)]
        lag = 0
        for tp in consumer.committed(parts, timeout=10):
            end = consumer.get_watermark_offsets(tp, timeout=10)[1]
            lag += end - tp.offset if tp.offset >= 0 else end
        return lag
    finally:
        consumer.close()


async def _produce(settings: Settings, connector: str, run: str, first_number: int) -> None:
    producer = AsyncProducer(settings.kafka)
    text = order_text()
    try:
        sends = []
        for n in range(ORDERS):
            # Distinct order numbers per round: the ERP refuses an external id it already has.
            number = first_number + n
            body = text.replace('"order_number": 1001', f'"order_number": {number}', 1)
            headers = [
                (kh.EVENT_ID, f"bench-{run}-{n}".encode()),
                (kh.CONNECTOR, connector.encode()),
                (kh.ENDPOINT, b"orders"),
            ]
            sends.append(
                producer.send(INTEGRATION_EVENTS.name, body.encode(), key=str(n).encode(),
                              headers=headers)
            )  # fmt: skip
        await asyncio.gather(*sends)
    finally:
        await asyncio.to_thread(producer.close)


def _first_tries(sandbox_url: str, flow_marker: str) -> dict[str, dict[str, Any]]:
    attempts = httpx.get(f"{sandbox_url}/_sandbox/erp/attempts", timeout=30).json()
    first: dict[str, dict[str, Any]] = {}
    for attempt in attempts:
        key = str(attempt.get("headers", {}).get("idempotency-key", ""))
        if flow_marker in key and key not in first:
            first[key] = attempt
    return first


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Linear interpolation inside cumulative histogram buckets ``[(le, count), ...]``."""
    total = buckets[-1][1]
    if total == 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (upper - lower) * share
        lower, below = upper, count
    return lower


def _lag_buckets(metrics: str) -> dict[float, float]:
    per_le: dict[float, float] = {}
    pattern = re.compile(
        r'^synapseops_road_tier_hold_lag_seconds_bucket\{(?=[^}]*pipeline="'
        + INTEGRATION_DELIVERY
        + r'")[^}]*le="([^"]+)"[^}]*\}\s+(\S+)$',
        re.MULTILINE,
    )
    for le, value in pattern.findall(metrics):
        bound = float("inf") if le == "+Inf" else float(le)
        per_le[bound] = per_le.get(bound, 0.0) + float(value)
    return per_le


def _lag_quantiles(
    before: dict[float, float], after: dict[float, float]
) -> tuple[float, float, int]:
    """p50, p99 and count of the tier lags observed between two scrapes."""
    buckets = sorted((le, count - before.get(le, 0.0)) for le, count in after.items())
    if not buckets:
        return float("nan"), float("nan"), 0
    return _quantile(buckets, 0.5), _quantile(buckets, 0.99), int(buckets[-1][1])


def _one_round(settings: Settings, world: dict[str, Any], error_rate: float) -> None:
    sandbox_url = world["sandbox"].url
    connector, flow_id = make_flow(world["engine"], settings, sandbox_url)
    marker = f"synapseops-flow-{flow_id}-"
    httpx.delete(f"{sandbox_url}/_sandbox/faults", timeout=10)
    if error_rate:
        fault = {"target": "erp", "status": 503, "error_rate": error_rate, "seed": 7}
        httpx.post(f"{sandbox_url}/_sandbox/faults", json=fault, timeout=10).raise_for_status()
    run = uuid.uuid4().hex[:8]
    with _worker(settings, settings.database_url, world["key"], sandbox_url) as worker:
        # Older traffic the worker caught up on is not part of these figures.
        baseline = _lag_buckets(httpx.get(f"{worker}/metrics", timeout=10).text)
        asyncio.run(_produce(settings, connector, run, 1_000_000 + flow_id * ORDERS))
        _wait(lambda: len(_first_tries(sandbox_url, marker)) >= ORDERS, "every first try", 900)
        first = _first_tries(sandbox_url, marker)
        times = sorted(datetime.fromisoformat(a["received_at"]).timestamp() for a in first.values())
        healthy = sum(1 for a in first.values() if a["outcome"] == "accepted")
        span = max(times[-1] - times[0], 1e-9)
        if error_rate:
            # Let the failed ones come back through the tiers before reading the lag.
            try:
                _wait(lambda: _accepted(sandbox_url, marker) >= ORDERS, "retried orders", 120)
            except TimeoutError:
                attempts = httpx.get(f"{sandbox_url}/_sandbox/erp/attempts", timeout=30).json()
                mine = [a for a in attempts if marker in str(a["headers"].get("idempotency-key"))]
                outcomes = Counter(a["outcome"] for a in mine)
                _say(f"  retries did not all land: {_accepted(sandbox_url, marker)} accepted, "
                     f"attempts by outcome {dict(outcomes)}")  # fmt: skip
                raise
        exposition = httpx.get(f"{worker}/metrics", timeout=10).text
        p50, p99, held = _lag_quantiles(baseline, _lag_buckets(exposition))
    _say(
        f"failing {error_rate:4.0%}: healthy path {healthy / span:7.1f} orders/s "
        f"({healthy} of {ORDERS} first tries succeeded in {span:.1f}s)"
    )
    if held:
        _say(
            f"             tier delay error (start - due) over {held} retries: "
            f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (from histogram buckets)"
        )


def _accepted(sandbox_url: str, marker: str) -> int:
    received = httpx.get(f"{sandbox_url}/_sandbox/erp/received", timeout=30).json()
    keys = {str(r.get("headers", {}).get("idempotency-key", "")) for r in received}
    return sum(1 for key in keys if marker in key)


def run() -> None:
    # First the road alone (a trivial pipeline, before/after micro-batches), then the flow.
    road_throughput.run()
    base = Settings()
    name = f"bench_road_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(make_url(base.database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = make_url(base.database_url).set(database=name).render_as_string(hide_password=False)
    key = Fernet.generate_key().decode()
    settings = base.model_copy(
        update={"database": DatabaseSettings(url=SecretStr(url)), "credentials_key": SecretStr(key)}
    )
    engine = sqlalchemy.create_engine(url, pool_size=5)
    try:
        upgrade(url)
        apply_topics(settings)
        with SandboxServer() as sandbox:
            world = {"engine": engine, "sandbox": sandbox, "key": key}
            for rate in (0.0, 0.10):
                _one_round(settings, world, rate)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
