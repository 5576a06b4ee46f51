"""Payment Gateway figures: settlements per second end to end, and ingress-to-ledger latency.

N ``payment_intent.succeeded`` events (one new payment each, built from the real Stripe
fixtures) are produced to ``payments.stripe.events`` with the ingress headers, stamped with
their ingress time as the webhook route would. A real ``synapseops worker`` subprocess settles
them against an in-process sandbox finance ledger; a throwaway database on the configured server
keeps the figures free of other traffic. Latency is the ledger entry's creation time minus the
event's ``synapseops-received-at``; throughput is N over first-ingress to last-ledger-entry.
Prints numbers; asserts nothing about time.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from uuid import uuid4

import httpx
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from sandbox.harness import SandboxServer
from synapseops.kafka import consumer_config, producer_config
from synapseops.settings import RetrySettings, Settings
from tests.integration.databases import fresh_database
from tests.integration.payments.factory import PaymentFactory
from tests.integration.worker_process import WorkerProcess
from topics.admin import apply_topics
from topics.registry import STRIPE_EVENTS, platform_registry

EVENTS = 2000  # the burst: throughput
PACED = 200  # then one every PACE_S: latency without a queue in front
PACE_S = 0.05
WARMUP = 50
TIERS = "1s,2s,3s"
DEADLINE_S = 300.0


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _start_at_end(settings: Settings, group: str) -> None:
    """The worker's groups start at the topics' ends: earlier records belong to other runs."""
    registry = platform_registry(settings.retry.delays)
    groups = [group, f"{group}.dead-letters"] + [f"{group}.{p}.tiers" for p in registry.pipelines]
    probe = Consumer(consumer_config(settings.kafka, f"{group}.probe"))
    existing = probe.list_topics(timeout=10).topics
    offsets = [
        TopicPartition(spec.name, partition, _end_offset(probe, spec.name, partition))
        for spec in registry
        for partition in existing[spec.name].partitions
    ]
    probe.close()
    for name in groups:
        consumer = Consumer(consumer_config(settings.kafka, name))
        consumer.commit(offsets=offsets, asynchronous=False)
        consumer.close()


def _end_offset(probe: Consumer, topic: str, partition: int) -> int:
    # Topics created a moment ago may not have a leader yet: ask again for a few seconds.
    for _ in range(20):
        try:
            return int(probe.get_watermark_offsets(TopicPartition(topic, partition), 10)[1])
        except KafkaException:
            time.sleep(0.5)
    return int(probe.get_watermark_offsets(TopicPartition(topic, partition), 10)[1])


def _send(settings: Settings, count: int, pace_s: float = 0.0) -> dict[str, datetime]:
    """Produce ``count`` succeeded events; their settlement ids with the ingress time."""
    producer = Producer(producer_config(settings.kafka))
    sent: dict[str, datetime] = {}
    for _ in range(count):
        payment = PaymentFactory(amount=4200)
        event = payment.succeeded()
        received = datetime.now().astimezone()
        producer.produce(
            STRIPE_EVENTS.name,
            event.body,
            key=event.key.encode(),
            headers=event.headers(received),  # type: ignore[arg-type]
        )
        producer.poll(0)
        sent[payment.charge_settlement] = received
        if pace_s:
            producer.flush(5)
            time.sleep(pace_s)
    producer.flush(60)
    return sent


def _wait_ledger(sandbox: SandboxServer, sent: dict[str, datetime]) -> dict[str, datetime]:
    deadline = time.monotonic() + DEADLINE_S
    booked: dict[str, datetime] = {}
    while time.monotonic() < deadline:
        entries = httpx.get(f"{sandbox.url}/_sandbox/finance/ledger", timeout=30).json()["entries"]
        booked = {
            e["key"]: datetime.fromisoformat(e["created_at"]) for e in entries if e["key"] in sent
        }
        if len(booked) == len(sent):
            break
        time.sleep(0.5)
    return booked


def run() -> None:
    base = Settings()
    settings = base.model_copy(update={"retry": RetrySettings(tiers=TIERS)})
    apply_topics(settings)
    group = f"bench-payments-{uuid4().hex[:8]}"
    _start_at_end(settings, group)
    with (
        fresh_database(base.database_url, "t_payments") as database,
        SandboxServer() as sandbox,
        TemporaryDirectory() as data_dir,
    ):
        worker = WorkerProcess(
            settings.kafka.bootstrap,
            database,
            Path(data_dir),
            tiers=TIERS,
            group_id=group,
            extra_env={
                "SYNAPSEOPS_LOG_LEVEL": "WARNING",
                "SYNAPSEOPS_PAYMENTS_FINANCE_URL": f"{sandbox.url}/finance",
            },
        )
        worker.start()
        try:
            worker.wait_healthy()
            _wait_ledger(sandbox, _send(settings, WARMUP))  # joins the group, warms the pools
            started = time.monotonic()
            sent = _send(settings, EVENTS)
            booked = _wait_ledger(sandbox, sent)
            wall = time.monotonic() - started
            paced = _send(settings, PACED, PACE_S)
            paced_booked = _wait_ledger(sandbox, paced)
        finally:
            worker.stop()
    latencies = sorted((paced_booked[k] - paced[k]).total_seconds() for k in paced_booked)
    burst = sorted((booked[k] - sent[k]).total_seconds() for k in booked)
    span = (max(booked.values()) - min(sent.values())).total_seconds() if booked else wall
    _say(f"settlements booked         {len(booked)} of {len(sent)} (one worker, 6 partitions)")
    _say(f"settlements per second     {len(booked) / span:.1f} (ingress to ledger, end to end)")
    if latencies:
        _say(
            f"ingress-to-ledger p50/p99  {_ms(statistics.median(latencies))} / "
            f"{_ms(_p99(latencies))} ({len(latencies)} events paced {1 / PACE_S:.0f}/s)"
        )
    if burst:
        _say(
            f"  within the burst p50/p99 {_ms(statistics.median(burst))} / {_ms(_p99(burst))} "
            f"(queueing behind {EVENTS} events sent at once)"
        )


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


if __name__ == "__main__":
    run()
