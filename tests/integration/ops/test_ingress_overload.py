"""Ingress offered far more than Kafka takes: refusals with Retry-After, nothing accepted lost,
the API's memory bounded.

The real API (``synapseops api``, a subprocess) on the session's broker, with a client id of
its own that the broker throttles: a Kafka ``producer_byte_rate`` quota (set with Kafka's own
``kafka.admin.ConfigCommand``) makes the broker take that client's records at
:data:`QUOTA_BYTES_PER_S`, while the test offers :data:`OFFERED_PER_S` generic events of
:data:`BODY_BYTES` each — about ten times that — open-loop from many threads. Then the quota
is lifted and whatever the producer still holds lands.

Checked: every event answered 2xx is in ``integration.events`` (read back by event id);
every refusal is a 503 with ``Retry-After``; no event refused as ``overloaded`` is in Kafka;
the API's resident memory grew by less than :data:`RSS_GROWTH_LIMIT` while about
``OFFERED_PER_S * OFFER_S * BODY_BYTES`` bytes were offered (without the bounds the producer
holds every one of them until acknowledged, which is several times the limit); the producer's
pending bytes, sampled from ``/metrics``, never passed their bound by more than one event.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from synapseops import headers as kh
from synapseops.kafka import consumer_config
from synapseops.local.kafka_broker import LocalBroker
from synapseops.settings import KafkaSettings, Settings
from synapseops.settings.base import DEFAULT_DEV_SOURCE_TOKEN
from tests.integration.databases import fresh_database
from tests.integration.ops.ops_stack import ServedProcess
from tests.integration.ops.traffic import wait_until
from tests.integration.worker_process import free_port
from topics.registry import INBOUND_EVENTS

pytestmark = pytest.mark.integration

BODY_BYTES = 128 * 1024
OFFERED_PER_S = 40.0
OFFER_S = 15.0
QUOTA_BYTES_PER_S = 512 * 1024
MAX_IN_FLIGHT = 32
MAX_PENDING_BYTES = 2 * 1024 * 1024
RSS_GROWTH_LIMIT = 64 * 1024 * 1024
SOURCE = "otel"  # a generic source of the dev defaults (token)


def config_command(settings: Settings, bootstrap: str, *args: str, check: bool = True) -> None:
    """Kafka's ``kafka-configs`` (the jars the project fetched for its broker)."""
    libs = LocalBroker(settings).libs
    argv = ["java", "-cp", f"{libs}/*", "kafka.admin.ConfigCommand", "--bootstrap-server"]
    subprocess.run([*argv, bootstrap, *args], check=check, capture_output=True, timeout=120)


@pytest.fixture
def throttled_client(settings: Settings, kafka_bootstrap: str) -> Iterator[str]:
    """A client id the broker takes records from at ``QUOTA_BYTES_PER_S`` (lifted at the end)."""
    client_id = f"t-overload-{uuid4().hex[:8]}"
    entity = ["--entity-type", "clients", "--entity-name", client_id]
    config_command(
        settings,
        kafka_bootstrap,
        "--alter",
        "--add-config",
        f"producer_byte_rate={QUOTA_BYTES_PER_S}",
        *entity,
    )
    try:
        yield client_id
    finally:
        lift_quota(settings, kafka_bootstrap, client_id, check=False)  # the test lifts it first


def lift_quota(settings: Settings, bootstrap: str, client_id: str, *, check: bool = True) -> None:
    entity = ["--entity-type", "clients", "--entity-name", client_id]
    args = ("--alter", "--delete-config", "producer_byte_rate", *entity)
    config_command(settings, bootstrap, *args, check=check)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def topic_ends(kafka: KafkaSettings) -> list[TopicPartition]:
    probe = Consumer(consumer_config(kafka, f"t-overload-probe-{uuid4().hex[:8]}"))
    try:
        topic = probe.list_topics(INBOUND_EVENTS.name, timeout=10).topics[INBOUND_EVENTS.name]
        return [
            TopicPartition(INBOUND_EVENTS.name, p, probe.get_watermark_offsets(
                TopicPartition(INBOUND_EVENTS.name, p), timeout=10)[1])
            for p in topic.partitions
        ]  # fmt: skip
    finally:
        probe.close()


def event_ids_since(kafka: KafkaSettings, starts: list[TopicPartition]) -> set[str]:
    """Every event id in the topic from ``starts`` to its current end."""
    ends = {tp.partition: tp.offset for tp in topic_ends(kafka)}
    consumer = Consumer(consumer_config(kafka, f"t-overload-read-{uuid4().hex[:8]}"))
    found: set[str] = set()
    try:
        consumer.assign(starts)
        position = {tp.partition: tp.offset for tp in starts}
        deadline = time.monotonic() + 120
        while any(position[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=1.0):
                if message.error() is not None:
                    continue
                position[message.partition()] = message.offset() + 1
                found.add(kh.to_map(message.headers() or [])[kh.EVENT_ID])
    finally:
        consumer.close()
    return found


def test_ingress_offered_ten_times_what_kafka_takes_refuses_the_rest_and_loses_nothing(
    settings: Settings,
    kafka_bootstrap: str,
    database_url: str,
    throttled_client: str,
    tmp_path: Path,
) -> None:
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    starts = topic_ends(kafka)
    port = free_port()
    with fresh_database(database_url, "t_payments") as database:
        env = {
            **os.environ,
            "SYNAPSEOPS_ENV": "dev",
            "SYNAPSEOPS_LOG_LEVEL": "WARNING",
            "SYNAPSEOPS_DATA_DIR": str(tmp_path),
            "SYNAPSEOPS_DATABASE_URL": database,
            "SYNAPSEOPS_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "SYNAPSEOPS_KAFKA_CLIENT_ID": throttled_client,
            "SYNAPSEOPS_API_PORT": str(port),
            "SYNAPSEOPS_INGRESS_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
            "SYNAPSEOPS_INGRESS_MAX_PENDING_BYTES": str(MAX_PENDING_BYTES),
        }
        api = ServedProcess("api", port, env, tmp_path / "api.log", "/health")
        api.start()
        try:
            api.wait_healthy()
            assert api.process is not None
            pid, base = api.process.pid, f"http://{api.address}"
            answers: dict[str, tuple[int, str | None, str]] = {}
            peak = {"rss": 0, "pending": 0.0}
            done = threading.Event()

            def watch() -> None:
                with httpx.Client(timeout=10) as http:
                    while not done.is_set():
                        peak["rss"] = max(peak["rss"], rss_bytes(pid))
                        try:
                            text = http.get(f"{base}/metrics").text
                            pending = gauge(text, "synapseops_ingress_pending_bytes")
                            peak["pending"] = max(peak["pending"], pending)
                        except httpx.TransportError:
                            pass
                        time.sleep(0.2)

            http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=200))
            # Warm up (first requests import and allocate), then take the baseline.
            for n in range(5):
                assert post(http, base, f"warm-{n}").status_code == 202
            baseline = rss_bytes(pid)
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            begin, count = time.monotonic(), int(OFFERED_PER_S * OFFER_S)

            def one(index: int) -> None:
                time.sleep(max(0.0, begin + index / OFFERED_PER_S - time.monotonic()))
                event_id = f"ovl-{uuid4().hex}"
                answer = post(http, base, event_id)
                detail = answer.text if answer.status_code >= 300 else ""
                answers[event_id] = (answer.status_code, answer.headers.get("retry-after"), detail)

            with ThreadPoolExecutor(max_workers=160) as pool:
                list(pool.map(one, range(count)))
            lift_quota(settings, kafka_bootstrap, throttled_client)
            wait_until(
                lambda: (
                    gauge(http.get(f"{base}/metrics").text, "synapseops_ingress_pending_bytes") == 0
                ),
                "the producer's pending records delivered",
                120,
            )
            done.set()
            watcher.join(10)
            http.close()
        finally:
            api.stop()
            print(f"--- api\n{api.log_tail(2000)}")

    in_kafka = event_ids_since(kafka, starts)
    accepted = {e for e, (status, _, _) in answers.items() if status < 300}
    refused = {e: a for e, a in answers.items() if a[0] >= 300}
    overloaded = {e for e, (_, _, detail) in refused.items() if "overloaded" in detail}
    statuses = sorted({status for status, _, _ in refused.values()})
    growth = peak["rss"] - baseline
    print(
        f"\noffered {len(answers)} events of {BODY_BYTES // 1024} KiB at {OFFERED_PER_S:g}/s "
        f"(~{OFFERED_PER_S * BODY_BYTES / QUOTA_BYTES_PER_S:.0f}x the broker's quota): "
        f"{len(accepted)} accepted, {len(refused)} refused ({len(overloaded)} overloaded, "
        f"statuses {statuses}); API RSS {baseline / 2**20:.0f} MiB → peak "
        f"{peak['rss'] / 2**20:.0f} MiB (+{growth / 2**20:.1f}); producer pending peak "
        f"{peak['pending'] / 2**20:.2f} MiB of {MAX_PENDING_BYTES / 2**20:.0f} MiB"
    )
    assert accepted and overloaded, "the run must both accept and refuse for overload"
    assert accepted <= in_kafka, f"{len(accepted - in_kafka)} accepted events not in Kafka"
    assert not overloaded & in_kafka, "an event refused as overloaded was published"
    assert statuses == [503]
    assert all(retry is not None and retry.isdigit() for _, retry, _ in refused.values())
    assert peak["pending"] <= MAX_PENDING_BYTES + BODY_BYTES + 4096
    assert growth < RSS_GROWTH_LIMIT, f"API memory grew by {growth / 2**20:.0f} MiB"


def post(http: httpx.Client, base: str, event_id: str) -> httpx.Response:
    """One generic event of ``BODY_BYTES`` (incompressible: the quota counts wire bytes)."""
    pad = base64.b64encode(os.urandom(BODY_BYTES * 3 // 4)).decode()
    body = f'{{"id": "{event_id}", "pad": "{pad}"}}'.encode()
    return http.post(
        f"{base}/webhooks/events/{SOURCE}",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": event_id,
            "Authorization": f"Bearer {DEFAULT_DEV_SOURCE_TOKEN}",
        },
    )
