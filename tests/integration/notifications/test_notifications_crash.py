"""kill -9 of the notification worker mid-workflow: every run completes, no message twice.

Three workflows, ``RUNS`` triggers each, produced onto the triggers topic before the worker
starts: ``custom_pair`` sends two Slack messages one after the other (#alerts, then #ops),
``custom_delay`` sends to Slack, waits ``DELAY_S`` and then e-mails, ``custom_approval`` asks in
#approvals and e-mails the answer. The worker is killed (SIGKILL) while pairs are being sent,
delays are running and approvals are waiting; the approvals are answered while it is down; a
new worker finishes everything. Counted from the sandbox's Slack messages and its SMTP mailbox:
each expected message exactly once (no Message-ID twice), and every run ``done``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer
from cryptography.fernet import Fernet
from sqlalchemy import select

from sandbox.harness import SandboxServer
from sinks.notifications.approvals import Answer
from sinks.notifications.tables import approvals, runs
from synapseops.kafka import producer_config
from tests.integration.databases import fresh_database
from tests.integration.groups import start_groups_at_end
from tests.integration.notifications.harness import Harness, build, settings_for, trigger
from tests.integration.worker_process import WorkerProcess
from topics.admin import apply_topics
from topics.registry import NOTIFICATION_TRIGGERS

pytestmark = pytest.mark.integration

RUNS = 15
DELAY_S = 6.0
TIERS = "1s,2s,3s"
DEADLINE_S = 150.0
# The worker runs with a data folder of its own: one key for both sides, as a deployment has.
KEY = Fernet.generate_key().decode()


@pytest.fixture
def harness(database_url: str, sandbox: SandboxServer, kafka_bootstrap: str) -> Iterator[Harness]:
    with fresh_database(database_url, "t_notify_crash") as url:
        settings = settings_for(kafka_bootstrap, sandbox, KEY)
        apply_topics(settings)
        harness = build(settings, url, sandbox)
        yield harness
        harness.db.dispose()


def setup_workflows(harness: Harness) -> None:
    for name, channel in (("alerts", "#alerts"), ("ops", "#ops"), ("approvals", "#approvals")):
        harness.slack_channel(name, channel, rate_per_s=100.0)
    harness.email_channel("mail")
    harness.workflow(
        "pair",
        "custom_pair",
        [
            {"type": "notify", "channel": "alerts", "title": "a {{ subject_id }}"},
            {"type": "notify", "channel": "ops", "title": "b {{ subject_id }}"},
        ],
    )
    harness.workflow(
        "delay",
        "custom_delay",
        [
            {"type": "notify", "channel": "ops", "title": "before {{ subject_id }}"},
            {"type": "delay", "seconds": DELAY_S},
            {"type": "notify", "channel": "mail", "subject": "after {{ subject_id }}"},
        ],
    )
    harness.workflow(
        "approval",
        "custom_approval",
        [
            {"type": "wait_for_approval", "channel": "approvals", "title": "ask {{ subject_id }}"},
            {
                "type": "notify",
                "channel": "mail",
                "subject": "{{ approval.decision }} {{ subject_id }}",
            },
        ],
    )


def produce_triggers(harness: Harness) -> None:
    producer = Producer(producer_config(harness.settings.kafka))
    for index in range(RUNS):
        for kind in ("custom_pair", "custom_delay", "custom_approval"):
            value = harness.encoder.encode(trigger(kind, subject_id=f"{kind}-{index}"))
            producer.produce(NOTIFICATION_TRIGGERS.name, value, key=f"{kind}-{index}".encode())
    assert producer.flush(30) == 0


def titles(harness: Harness) -> Counter[str]:
    messages = httpx.get(f"{harness.sandbox.url}/_sandbox/slack/messages", timeout=10).json()
    return Counter(m["text"].split("\n")[0] for m in messages)


def states(harness: Harness) -> Counter[str]:
    with harness.db.connect() as conn:
        return Counter(conn.execute(select(runs.c.state)).scalars())


def wait_for(what: str, check: object, worker: WorkerProcess, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}\n{worker.log_tail()}")


def test_kill_9_during_delays_approvals_and_between_sends(
    harness: Harness, sandbox: SandboxServer, kafka_bootstrap: str, tmp_path: Path
) -> None:
    httpx.put(
        f"{sandbox.url}/_sandbox/limits", json={"slack": {"enabled": False}}
    ).raise_for_status()
    setup_workflows(harness)
    env = {
        "SYNAPSEOPS_WORKER_PIPELINES": "notification-dispatch",
        "SYNAPSEOPS_SANDBOX_HOST": sandbox.host,
        "SYNAPSEOPS_SANDBOX_PORT": str(sandbox.port),
        "SYNAPSEOPS_SANDBOX_SMTP_PORT": str(sandbox.smtp_port),
        "SYNAPSEOPS_NOTIFICATIONS_LEASE_S": "3",
        "SYNAPSEOPS_NOTIFICATIONS_TICK_S": "0.3",
        "SYNAPSEOPS_ROAD_BATCH_SIZE": "5",
        "SYNAPSEOPS_CREDENTIALS_KEY": KEY,
    }
    url = harness.db.url.render_as_string(hide_password=False)
    worker = WorkerProcess(kafka_bootstrap, url, tmp_path, tiers=TIERS, extra_env=env)
    group = worker.env["SYNAPSEOPS_WORKER_GROUP_ID"]
    start_groups_at_end(harness.settings.kafka, group, TIERS)
    produce_triggers(harness)
    started = time.monotonic()
    worker.start()
    try:
        # Kill while pairs are half sent, delays run and approvals wait.
        def mid_flight() -> bool:
            seen = titles(harness)
            pairs_a = sum(1 for t in seen if t.startswith("a "))
            return pairs_a >= 3 and sum(1 for t in seen if t.startswith("ask ")) >= 1

        wait_for("messages in flight", mid_flight, worker)
        worker.kill_9()
        killed = titles(harness)
        print(f"killed after {time.monotonic() - started:.1f}s with {sum(killed.values())} sent")
        with harness.db.connect() as conn:
            waiting = list(conn.execute(select(approvals.c.id)).scalars())
        now = datetime.now(UTC)
        for approval_id in waiting:  # answered while no worker runs
            harness.engine.approvals.answer(approval_id, Answer("approved", "user:ana", None, now))
        worker.start()

        def complete() -> bool:
            with harness.db.connect() as conn:
                asked = len(list(conn.execute(select(approvals.c.id)).scalars()))
            if asked < RUNS:  # the rest of the approvals are asked by the new worker
                return False
            for approval_id in harness.engine.approvals.pending_for_kind("custom_approval"):
                harness.engine.approvals.answer(
                    approval_id, Answer("approved", "user:ana", None, datetime.now(UTC))
                )
            return states(harness) == Counter({"done": 3 * RUNS})

        wait_for("every run done", complete, worker)
        time.sleep(1.0)  # anything sent twice would show now
    finally:
        worker.stop()
    print(f"all {3 * RUNS} runs done after {time.monotonic() - started:.1f}s")
    seen = titles(harness)
    expected = Counter(
        [f"{p} custom_pair-{i}" for p in ("a", "b") for i in range(RUNS)]
        + [f"before custom_delay-{i}" for i in range(RUNS)]
        + [f"ask custom_approval-{i}" for i in range(RUNS)]
    )
    assert seen == expected, {k: v for k, v in (seen - expected).items()}
    mails = httpx.get(f"{sandbox.url}/_sandbox/smtp/received", timeout=10).json()
    subjects = Counter(m["subject"] for m in mails)
    assert subjects == Counter(
        [f"after custom_delay-{i}" for i in range(RUNS)]
        + [f"approved custom_approval-{i}" for i in range(RUNS)]
    )
    ids = httpx.get(f"{sandbox.url}/_sandbox/smtp/message-ids", timeout=10).json()
    assert set(ids.values()) == {1} and len(ids) == 2 * RUNS
