"""Issue 13's closing proofs through the whole stack (:mod:`.whole_stack`).

1. A payment dead-lettered while finance is down reaches Slack ``#dead-letters`` once; the
   time from the dead letter to the message is printed (the issue asks for 5 s).
2. Slack answering 429 with ``Retry-After`` for longer than every retry tier together delays
   messages without losing one, each sent once (a 429 is not an attempt).
3. 1,000 dead letters in a burst (poison records into two pipelines) with the demo's
   dead-letter workflows (throttle + notify, digest): one e-mail per digest window and key
   with the exact count, Slack messages no more than the throttle lets through per window.
4. The triggers topic deleted and re-created under a running worker (``topics apply`` after
   a delete): the dispatch pipeline reads the new topic from its start.

The tests run in this order on one stack; each disables the workflows it made.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from sqlalchemy import func, select

from schemas.models import NotificationTrigger
from sinks.dead_letters.tables import dead_letters
from sinks.notifications.tables import digests, runs, throttles
from tests.integration.notifications.whole_stack import (
    Notifications,
    Sandbox,
    at,
    demo_workflow,
    header,
    publish_triggers,
    settle,
)
from tests.integration.ops.ops_stack import OpsStack
from tests.integration.ops.traffic import StackTraffic, wait_until
from topics.admin import apply_topics
from topics.registry import INBOUND_EVENTS, NOTIFICATION_TRIGGERS, STRIPE_EVENTS

pytestmark = pytest.mark.integration

SETTLEMENT = "payment-settlement"
EVENT_LOG = "event-log"
TO_SLACK = "dead letters to #dead-letters"
DIGEST = "dead letters digest"


@pytest.fixture(scope="module")
def stack(ops_stack: OpsStack) -> OpsStack:
    """The ops tests' running stack (their conftest's fixture, imported into ours)."""
    return ops_stack


@pytest.fixture(scope="module")
def traffic(stack: OpsStack) -> Iterator[StackTraffic]:
    sender = StackTraffic(stack)
    yield sender
    sender.close()


@pytest.fixture(scope="module")
def db(stack: OpsStack) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(stack.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def notifications(traffic: StackTraffic) -> Iterator[Notifications]:
    made = Notifications(traffic)
    yield made
    made.close()


@pytest.fixture
def sandbox(stack: OpsStack) -> Sandbox:
    return Sandbox(stack)


def test_a_dead_letter_with_finance_down_reaches_slack_once(
    traffic: StackTraffic, notifications: Notifications, sandbox: Sandbox
) -> None:
    channel = notifications.slack("dead-letters", "#dead-letters")
    notifications.workflow(demo_workflow(TO_SLACK, {1: {"channel": channel}}))
    traffic.set_fault("finance", error_rate=1.0, status=503)
    try:
        (payment,) = traffic.payments(1)
        wait_until(
            lambda: len(traffic.api("GET", "/api/v1/dead-letters", params={"pipeline": SETTLEMENT})
                        ["items"]) == 1,
            f"payment {payment} dead-lettered after every tier",
        )  # fmt: skip
    finally:
        traffic.clear_faults()
    (dead,) = traffic.api("GET", "/api/v1/dead-letters", params={"pipeline": SETTLEMENT})["items"]
    assert dead["attempts"] == 4 and dead["error_class"] == "TargetUnavailable", dead
    title = f"Dead letter #{dead['id']} in {SETTLEMENT}"

    def mine() -> list[dict[str, object]]:
        return [m for m in sandbox.slack("dead-letters") if header(m) == title]

    wait_until(lambda: len(mine()) >= 1, f"{title!r} in #dead-letters", within_s=60)
    settle(lambda: len(mine()) == 1)
    (message,) = mine()
    latency = (at(str(message["received_at"])) - at(dead["dead_at"])).total_seconds()
    print(f"dead letter #{dead['id']} → Slack #dead-letters: {latency:.2f} s, 1 message")


def test_a_slack_429_burst_longer_than_every_tier_loses_nothing(
    stack: OpsStack, traffic: StackTraffic, notifications: Notifications, sandbox: Sandbox
) -> None:
    # The channel's own gate opened wide: Slack itself answers 429 with Retry-After: 2.
    channel = notifications.slack("limited", "#notifications", rate_per_s=100.0)
    kind = f"custom_burst_{notifications.suffix}"
    notifications.workflow(notify_workflow(kind, channel, "burst {{ subject_id }}"))
    count = 12
    triggers = [trigger(kind, f"{notifications.suffix}-{i}") for i in range(count)]
    titles = {f"burst {t.subject_id}" for t in triggers}
    traffic.set_fault(
        "slack", error_rate=1.0, status=429, retry_after_s=2,
        path_prefix="/slack/api/chat.postMessage",
    )  # fmt: skip
    try:
        publish_triggers(stack, triggers)
        # Every tier together is 1 + 2 + 3 s (+20 % jitter): 15 s of 429s outlast them all.
        wait_until(lambda: _refused(sandbox) >= count, "Slack answering 429 to every trigger")
        time.sleep(15)
        assert not [m for m in sandbox.slack("notifications") if header(m) in titles]
    finally:
        traffic.clear_faults()
    refused = _refused(sandbox)

    def sent() -> list[str]:
        return [header(m) for m in sandbox.slack("notifications") if header(m) in titles]

    wait_until(lambda: len(sent()) >= count, f"{count} messages after the 429s", within_s=60)
    settle(lambda: len(sent()) == count)
    assert sorted(sent()) == sorted(titles)  # each once
    dead = traffic.api("GET", "/api/v1/dead-letters", params={"pipeline": "notification-dispatch"})[
        "items"
    ]
    assert dead == [], dead
    print(f"{count} messages through {refused} answers of 429 over 15 s: none lost, none twice")


def test_a_burst_of_a_thousand_dead_letters_gives_one_digest_per_window_and_key(
    stack: OpsStack,
    traffic: StackTraffic,
    notifications: Notifications,
    sandbox: Sandbox,
    db: sqlalchemy.Engine,
) -> None:
    slack = notifications.slack("dead-letters", "#dead-letters")
    mail = notifications.email("ops-mail", f"ops-{notifications.suffix}@example.test")
    limit, throttle_s, digest_s = 5, 20, 20
    shorter: dict[int, dict[str, Any]] = {
        0: {"limit": limit, "window_s": throttle_s},
        1: {"channel": slack},
    }
    to_slack = notifications.workflow(demo_workflow(TO_SLACK, shorter))
    digest = notifications.workflow(
        demo_workflow(DIGEST, {0: {"window_s": digest_s, "channel": mail}})
    )
    known = set(_dead_letter_ids(db))
    started = time.monotonic()
    _poison(stack, {STRIPE_EVENTS.name: 500, INBOUND_EVENTS.name: 500})
    wait_until(lambda: len(_dead_letter_ids(db, known)) == 1000, "1,000 dead letters", within_s=180)
    ids = _dead_letter_ids(db, known)
    per_pipeline = _per_pipeline(ids)
    assert per_pipeline == {SETTLEMENT: 500, EVENT_LOG: 500}, per_pipeline
    workflows = [int(to_slack["id"]), int(digest["id"])]
    wait_until(lambda: _finished_runs(db, workflows) == 2000, "2,000 runs finished", within_s=300)
    wait_until(lambda: _digests(db, int(digest["id"]), sent=False) == [], "every digest sent")
    took = time.monotonic() - started

    # E-mail: one digest per window and key, each with its exact count.
    windows = _digests(db, int(digest["id"]), sent=True)
    mails = [
        m for m in sandbox.mails() if m["rcpt_tos"] == [f"ops-{notifications.suffix}@example.test"]
    ]
    assert sorted(m["subject"] for m in mails) == sorted(
        f"{count} dead letter(s) in {key}" for key, _, count in windows
    )
    for pipeline in (SETTLEMENT, EVENT_LOG):
        assert sum(count for key, _, count in windows if key == pipeline) == 500
    assert len({(key, end) for key, end, _ in windows}) == len(windows)

    # Slack: what the throttle let through per window and key, each dead letter once.
    counted = _throttled(db, int(to_slack["id"]))
    expected = sum(min(limit, count) for count in counted.values())
    titles = {f"Dead letter #{i} in {p}" for i, p in ids.items()}

    def posted() -> list[str]:
        return [header(m) for m in sandbox.slack("dead-letters") if header(m) in titles]

    wait_until(lambda: len(posted()) >= expected, f"{expected} Slack messages")
    settle(lambda: len(posted()) == expected)
    assert len(set(posted())) == expected
    for pipeline in (SETTLEMENT, EVENT_LOG):
        assert sum(c for (key, _), c in counted.items() if key == pipeline) == 500
    print(
        f"1,000 dead letters → {len(mails)} digest e-mails ({len(windows)} windows × keys) and "
        f"{expected} Slack messages (throttle {limit}/{throttle_s} s per pipeline) in {took:.1f} s"
    )


def test_a_recreated_triggers_topic_is_read_from_its_start(
    stack: OpsStack, notifications: Notifications, sandbox: Sandbox
) -> None:
    channel = notifications.slack("recreated", "#general")
    kind = f"custom_recreated_{notifications.suffix}"
    notifications.workflow(notify_workflow(kind, channel, "again {{ subject_id }}"))
    # Before: records on every partition, so the worker's positions are past 0 everywhere.
    before = [trigger(kind, f"before-{i}") for i in range(24)]
    publish_triggers(stack, before)
    wait_until(
        lambda: len([m for m in sandbox.slack("general") if header(m).startswith("again before-")])
        == len(before),
        "the triggers before the topic is deleted",
    )  # fmt: skip
    admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap})
    admin.delete_topics([NOTIFICATION_TRIGGERS.name])[NOTIFICATION_TRIGGERS.name].result(30)
    _recreate(stack, admin)
    after = [trigger(kind, f"after-{i}") for i in range(6)]
    published = time.monotonic()
    publish_triggers(stack, after)
    titles = {f"again {t.subject_id}" for t in after}

    def seen() -> set[str]:
        return {header(m) for m in sandbox.slack("general")} & titles

    wait_until(lambda: seen() == titles, "every trigger on the re-created topic", within_s=120)
    print(f"the re-created triggers topic read again: {time.monotonic() - published:.1f} s")


# ---- helpers ---------------------------------------------------------------------------------


def trigger(kind: str, subject: str) -> NotificationTrigger:
    return NotificationTrigger.model_validate(
        {
            "kind": kind,
            "pipeline": "whole-stack-test",
            "subject_id": subject,
            "summary": f"trigger {subject}",
            "occurred_at": datetime.now(UTC),
            "trace_id": uuid.uuid4().hex,
            "dedup_key": f"{kind}:{subject}",
        }
    )


def notify_workflow(kind: str, channel: str, title: str) -> dict[str, Any]:
    step = {"type": "notify", "channel": channel, "title": title}
    return {"name": f"{kind} to {channel}", "trigger_kind": kind, "spec": {"steps": [step]}}


def _refused(sandbox: Sandbox) -> int:
    return sum(
        1
        for a in sandbox.attempts("slack")
        if a.get("path", "").endswith("chat.postMessage") and a.get("status") == 429
    )


def _poison(stack: OpsStack, counts: dict[str, int]) -> None:
    """Records no handler can read, onto pipelines' inputs: each a dead letter at once."""
    producer = Producer({"bootstrap.servers": stack.kafka.bootstrap, "acks": "all"})
    for topic, count in counts.items():
        for i in range(count):
            producer.produce(topic, b"\xff not json, not avro \x00", key=f"poison-{i}".encode())
            producer.poll(0)
    assert producer.flush(30) == 0


def _dead_letter_ids(db: sqlalchemy.Engine, known: set[int] | None = None) -> dict[int, str]:
    """Every dead letter's pipeline by its id, but those in ``known``."""
    with db.connect() as conn:
        rows = conn.execute(select(dead_letters.c.id, dead_letters.c.pipeline)).all()
    return {int(r.id): str(r.pipeline) for r in rows if int(r.id) not in (known or set())}


def _per_pipeline(ids: dict[int, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pipeline in ids.values():
        counts[pipeline] = counts.get(pipeline, 0) + 1
    return counts


def _finished_runs(db: sqlalchemy.Engine, workflows: list[int]) -> int:
    done = select(func.count()).where(runs.c.workflow_id.in_(workflows), runs.c.state == "done")
    with db.connect() as conn:
        return int(conn.execute(done).scalar_one())


def _digests(db: sqlalchemy.Engine, workflow: int, *, sent: bool) -> list[tuple[str, str, int]]:
    sent_clause = digests.c.sent_at.is_not(None) if sent else digests.c.sent_at.is_(None)
    with db.connect() as conn:
        rows = conn.execute(
            select(digests.c.key, digests.c.window_end, digests.c["count"]).where(
                digests.c.workflow_id == workflow, sent_clause
            )
        ).all()
    return [(str(r.key), r.window_end.isoformat(), int(r[2])) for r in rows]


def _throttled(db: sqlalchemy.Engine, workflow: int) -> dict[tuple[str, str], int]:
    with db.connect() as conn:
        rows = conn.execute(
            select(throttles.c.key, throttles.c.window_start, throttles.c["count"]).where(
                throttles.c.workflow_id == workflow
            )
        ).all()
    return {(str(r.key), r.window_start.isoformat()): int(r[2]) for r in rows}


def _recreate(stack: OpsStack, admin: AdminClient) -> None:
    """``topics apply`` until the topic is back: creating it fails while the broker still
    deletes it in the background."""

    def applied() -> bool:
        try:
            apply_topics(stack.settings)
        except Exception:
            return False
        return NOTIFICATION_TRIGGERS.name in admin.list_topics(timeout=10).topics

    wait_until(applied, "the triggers topic created again", within_s=60)
