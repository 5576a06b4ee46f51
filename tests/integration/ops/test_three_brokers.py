"""A broker of a three-node cluster killed (SIGKILL) in the middle of a payments run.

The project's own three-node KRaft cluster (:class:`~synapseops.local.kafka_cluster.
LocalCluster`, what ``synapseops kafka start --brokers 3`` runs), the platform's topics with
replication 3 and ``min.insync.replicas`` 2, the real API and worker as subprocesses, the
sandbox finance ledger. Signed Stripe ``payment_intent.succeeded`` webhooks go through the
API at a steady rate; a third of the way in, the leader of the Stripe topic's partition 0 is
killed with SIGKILL, and restarted once the sending is over.

Counted by id at the end: every payment the API answered 2xx has exactly one ledger entry
(an ``acks=all`` answer with two replicas in sync is durable: nothing accepted is lost), no
ledger key twice (nothing doubled), no entry for a payment never sent; a payment answered
otherwise may be absent. The cluster heals: under-replicated partitions back to 0 through the
admin client, and the API's own gauge says so too.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy
from confluent_kafka.admin import AdminClient, ConfigResource
from sqlalchemy import func, select

from sandbox.harness import SandboxServer
from sandbox.traffic import DemoClient
from sinks.payments.tables import payment_events
from synapseops.local.kafka_cluster import LocalCluster
from synapseops.settings import ApiSettings, KafkaSettings, RetrySettings, Settings
from tests.integration.ops.ops_stack import ServedProcess
from tests.integration.ops.traffic import wait_until
from tests.integration.payments.factory import payments_database
from tests.integration.worker_process import WorkerProcess, free_port
from topics.admin import apply_topics
from topics.registry import STRIPE_EVENTS

pytestmark = pytest.mark.integration

PAYMENTS = int(os.environ.get("SYNAPSEOPS_FAILOVER_PAYMENTS", "300"))
RATE_PER_S = 25.0
TIERS = "1s,2s,3s"
SETTLED_WITHIN_S = 300.0


def ports_in_a_row(count: int) -> int:
    """A port p with p .. p+count-1 all free on 127.0.0.1 (node n takes p+2(n-1), +1), below
    the ephemeral range: a port picked there may be an outgoing connection's a moment later."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 30000)
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError(f"no {count} free ports in a row")


@pytest.fixture(scope="module")
def cluster(
    settings: Settings, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    """Three nodes in a data folder of their own (the jars: the session broker's cache)."""
    base = ports_in_a_row(6)
    own = Settings(
        data_dir=tmp_path_factory.mktemp("three-brokers"),
        kafka=KafkaSettings(bootstrap=f"127.0.0.1:{base}", controller_port=base + 1),
    )
    local = LocalCluster(own, 3, cache_dir=settings.data_dir / "cache")
    try:
        local.start(timeout=180)
        yield local
    finally:
        local.stop()
        for node in local.nodes:
            print(f"--- {node.name}\n{node.log_path.read_text(errors='replace')[-1500:]}")


@dataclass
class Run:
    """Every payment sent and how the API answered it (None: no answer at all)."""

    sent: dict[str, str] = field(default_factory=dict)  # payment -> event id
    answers: dict[str, int | None] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)  # how long each answer took
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def accepted(self) -> set[str]:
        return {p for p, status in self.answers.items() if status is not None and status < 300}


def send_payments(api_port: int, run: Run, count: int, started: threading.Event) -> None:
    """``count`` payments at :data:`RATE_PER_S`, eight in flight at most."""
    settings = Settings(env="dev", api=ApiSettings(port=api_port))
    with httpx.Client(timeout=45.0) as http:
        demo = DemoClient(settings, http)
        begin = time.monotonic()

        def one(index: int) -> None:
            time.sleep(max(0.0, begin + index / RATE_PER_S - time.monotonic()))
            payment, body = demo.stripe_event(1999)
            with run.lock:
                run.sent[payment] = json.loads(body)["id"]
            asked = time.monotonic()
            try:
                status: int | None = demo.send_stripe(body).status_code
            except httpx.TransportError:
                status = None
            with run.lock:
                run.answers[payment] = status
                run.seconds.append(time.monotonic() - asked)
            if index == count // 3:
                started.set()

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, range(count)))


def api_gauge(api: ServedProcess, name: str) -> float | None:
    for line in httpx.get(f"http://{api.address}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_a_broker_killed_mid_run_loses_nothing_accepted_and_doubles_nothing(
    cluster: LocalCluster, database_url: str, tmp_path: Path
) -> None:
    environment = cluster.environment()
    kafka = KafkaSettings(bootstrap=cluster.bootstrap, replication_factor=3, min_insync_replicas=2)
    apply_topics(Settings(env="dev", kafka=kafka, retry=RetrySettings(tiers=TIERS)))
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    # Created a moment ago: every node learns of the topic within a second or two.
    wait_until(lambda: cluster.under_replicated() == 0, "the new topics fully replicated", 60)
    wait_until(
        lambda: all(
            p.leader >= 0 and len(p.replicas) == 3
            for p in admin.list_topics(STRIPE_EVENTS.name, timeout=10)
            .topics[STRIPE_EVENTS.name]
            .partitions.values()
        ),
        "the Stripe topic's partitions led, three replicas each",
        60,
    )
    described = admin.describe_configs([ConfigResource("topic", STRIPE_EVENTS.name)])
    [config] = [future.result(30) for future in described.values()]
    assert config["min.insync.replicas"].value == "2"

    with payments_database(database_url) as database, SandboxServer() as sandbox:
        api_port = free_port()
        group = f"t-failover-{os.urandom(4).hex()}"
        env = {
            **os.environ,
            **environment,
            "SYNAPSEOPS_ENV": "dev",
            "SYNAPSEOPS_LOG_LEVEL": "WARNING",
            "SYNAPSEOPS_DATA_DIR": str(tmp_path),
            "SYNAPSEOPS_DATABASE_URL": database,
            "SYNAPSEOPS_API_PORT": str(api_port),
            "SYNAPSEOPS_WORKER_GROUP_ID": group,
            "SYNAPSEOPS_OBSERVABILITY_LAG_CACHE_S": "1",
        }
        api = ServedProcess("api", api_port, env, tmp_path / "api.log", "/health")
        worker = WorkerProcess(
            cluster.bootstrap,
            database,
            tmp_path,
            tiers=TIERS,
            group_id=group,
            extra_env={
                **environment,
                "SYNAPSEOPS_LOG_LEVEL": "WARNING",
                "SYNAPSEOPS_WORKER_PIPELINES": "payment-settlement",
                "SYNAPSEOPS_PAYMENTS_FINANCE_URL": f"{sandbox.url}/finance",
            },
        )
        api.start()
        worker.start()
        try:
            api.wait_healthy()
            worker.wait_healthy()
            run, third = Run(), threading.Event()
            sender = threading.Thread(
                target=send_payments, args=(api_port, run, PAYMENTS, third), daemon=True
            )
            began = time.monotonic()
            sender.start()
            assert third.wait(120), "the first third was never sent"
            victim = cluster.leader_of(STRIPE_EVENTS.name, 0)
            pid = victim.pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic() - began
            wait_until(
                lambda: (api_gauge(api, "synapseops_kafka_partitions_under_replicated") or 0) > 0,
                "the API's gauge seeing partitions under-replicated",
                60,
            )
            sender.join(300)
            assert not sender.is_alive(), "the sender did not finish"
            victim.start(wait=False)
            restarted = time.monotonic()
            wait_until(lambda: cluster.under_replicated() == 0, "the cluster healed", 180)
            healed_s = time.monotonic() - restarted
            wait_until(
                lambda: (
                    api_gauge(api, "synapseops_kafka_partitions_under_replicated") == 0
                    and api_gauge(api, "synapseops_kafka_brokers") == 3
                ),
                "the API's gauges healed",
                60,
            )
            engine = sqlalchemy.create_engine(database)
            accepted_events = [run.sent[p] for p in run.accepted]

            def processed() -> int:
                with engine.connect() as conn:
                    return int(
                        conn.execute(
                            select(func.count()).where(
                                payment_events.c.event_id.in_(accepted_events),
                                payment_events.c.processed_at.isnot(None),
                            )
                        ).scalar_one()
                    )

            wait_until(
                lambda: processed() == len(accepted_events), "accepted ones", SETTLED_WITHIN_S
            )
            engine.dispose()
            ledger = httpx.get(f"{sandbox.url}/_sandbox/finance/ledger").json()["entries"]
        finally:
            worker.stop()
            api.stop()
            print(f"--- api\n{api.log_tail(1500)}\n--- worker\n{worker.log_tail(1500)}")

    keys = Counter(entry["key"] for entry in ledger)
    doubled = sorted(key for key, n in keys.items() if n > 1)
    expected = {f"stl_{p}_charge" for p in run.accepted}
    lost = sorted(expected - set(keys))
    phantom = sorted(set(keys) - {f"stl_{p}_charge" for p in run.sent})
    statuses = Counter(str(status) for status in run.answers.values())
    slowest = sorted(run.seconds)
    print(
        f"\n{len(run.sent)} payments sent, answers {dict(statuses)} (p50 "
        f"{slowest[len(slowest) // 2]:.2f}s, slowest {slowest[-1]:.1f}s: held until durable); node "
        f"{victim.address.node_id} killed at {killed_at:.1f}s; healed {healed_s:.1f}s after its "
        f"restart; {len(keys)} ledger entries; lost {len(lost)}, doubled {len(doubled)}"
    )
    assert len(run.answers) == PAYMENTS
    assert len(run.accepted) >= PAYMENTS // 2, "most of the run should have been accepted"
    assert (lost, doubled, phantom) == ([], [], [])
