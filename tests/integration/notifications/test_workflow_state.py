"""Durable run state: delays across a restart, approvals (answered, expired, a settlement's
one decision), throttles and digests — real PostgreSQL, Kafka and the sandbox."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from sandbox.harness import SandboxServer
from sinks.notifications.approvals import Answer
from sinks.notifications.tables import approvals, digests, runs
from streams.road import Hop, Outcome
from tests.integration.databases import fresh_database
from tests.integration.notifications.harness import Harness, build, settings_for, trigger
from topics.admin import apply_topics
from topics.registry import NOTIFICATION_COMMANDS, SETTLEMENT_COMMAND, SETTLEMENT_COMMANDS

pytestmark = pytest.mark.integration


@pytest.fixture
def database(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_notify_state") as url:
        yield url


@pytest.fixture
def harness(database: str, sandbox: SandboxServer, kafka_bootstrap: str) -> Iterator[Harness]:
    settings = settings_for(kafka_bootstrap, sandbox)
    apply_topics(settings)
    harness = build(settings, database, sandbox)
    yield harness
    harness.run(harness.engine.delivery.senders.aclose())
    harness.db.dispose()


def run_rows(harness: Harness) -> list[dict[str, object]]:
    with harness.db.connect() as conn:
        return [dict(r) for r in conn.execute(select(runs).order_by(runs.c.created_at)).mappings()]


def resume(harness: Harness, run_id: str) -> Outcome:
    record = harness.record(json.dumps({"run_id": run_id}).encode(), NOTIFICATION_COMMANDS.name)
    result = harness.handle(record)
    assert isinstance(result, Outcome), result
    return result


def test_a_delay_survives_a_restart_and_the_waker_resumes_it(
    harness: Harness, database: str, sandbox: SandboxServer, kafka_bootstrap: str
) -> None:
    harness.slack_channel("ops", "#ops")
    harness.workflow(
        "later",
        "custom_delay",
        [{"type": "delay", "seconds": 1.5}, {"type": "notify", "channel": "ops", "title": "later"}],
    )
    assert isinstance(harness.fire(trigger("custom_delay")), Outcome)
    (run,) = run_rows(harness)
    assert run["state"] == "waiting" and harness.slack("ops") == []
    assert harness.tick() == 0  # not due yet
    # A new process (the old one gone): everything it knows is in PostgreSQL.
    restarted = build(harness.settings, database, sandbox)
    time.sleep(1.6)
    assert restarted.tick() == 1  # due: one resume command published
    assert restarted.tick() == 0  # not published twice within a lease
    resume(restarted, str(run["id"]))
    assert [m["text"].split("\n")[0] for m in harness.slack("ops")] == ["later"]
    assert run_rows(harness)[0]["state"] == "done"
    resume(restarted, str(run["id"]))  # a late duplicate resume sends nothing
    assert len(harness.slack("ops")) == 1


def approval_workflow(harness: Harness, kind: str, **approval: object) -> None:
    harness.slack_channel(f"approvals-{kind}", "#approvals")
    harness.workflow(
        f"approve {kind}",
        kind,
        [
            {"type": "wait_for_approval", "channel": f"approvals-{kind}", **approval},
            {
                "type": "notify",
                "channel": f"approvals-{kind}",
                "title": "{{ approval.decision }} by {{ approval.by }}",
            },
        ],
    )


def pending(harness: Harness) -> list[dict[str, object]]:
    with harness.db.connect() as conn:
        return [dict(r) for r in conn.execute(select(approvals)).mappings()]


def test_an_answered_approval_resumes_the_run_once(harness: Harness) -> None:
    approval_workflow(harness, "custom_approval")
    harness.fire(trigger("custom_approval"))
    (approval,) = pending(harness)
    first = harness.slack("#approvals")[0]
    buttons = [b for b in first["blocks"] if b["type"] == "actions"][0]["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Approve", "Reject", "Open"]
    store = harness.engine.approvals
    now = datetime.now(UTC)
    assert store.answer(str(approval["id"]), Answer("approved", "token:ana", "fine", now))
    assert store.answer(str(approval["id"]), Answer("rejected", "token:bob", "no", now)) is None
    resume(harness, str(approval["run_id"]))
    titles = [m["text"].split("\n")[0] for m in harness.slack("#approvals")]
    assert titles[1] == "approved by token:ana" and len(titles) == 2


def test_an_approval_answered_before_its_question_went_out_is_still_told_once(
    harness: Harness,
) -> None:
    """A worker killed between opening the approval and posting the question (here: Slack
    answering 500 at that moment) leaves the question unsent; answered in the inbox meanwhile,
    the question still goes out on the retry — once, saying the answer, without buttons — and
    the run goes on. (The crash test saw the question never sent at all.)"""
    approval_workflow(harness, "custom_approval")
    body = {"target": "slack", "path_prefix": "/slack/api/chat.postMessage", "status": 500}
    httpx.post(f"{harness.sandbox.url}/_sandbox/faults", json={**body, "count": 1}, timeout=10)
    record = harness.record(harness.encoder.encode(trigger("custom_approval")))
    assert isinstance(harness.handle(record), Hop)  # the question failed: to a retry tier
    (approval,) = pending(harness)
    assert harness.slack("#approvals") == []
    now = datetime.now(UTC)
    assert harness.engine.approvals.answer(
        str(approval["id"]), Answer("approved", "token:ana", None, now)
    )
    result = harness.handle(record)  # what the retry tier does
    assert isinstance(result, Outcome) and result.status == "done", result
    question, answer = harness.slack("#approvals")
    assert "Already answered: approved by token:ana." in question["text"]
    buttons = [e for b in question["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Open"]  # no Approve/Reject any more
    assert answer["text"].startswith("approved by token:ana")
    harness.handle(record)  # a late duplicate sends nothing
    assert len(harness.slack("#approvals")) == 2


def test_an_expired_approval_follows_its_expiry_rule(harness: Harness) -> None:
    approval_workflow(harness, "custom_expiring", expires_s=1, on_expiry="reject")
    harness.fire(trigger("custom_expiring"))
    time.sleep(1.2)
    assert harness.tick() == 1
    (run,) = run_rows(harness)
    resume(harness, str(run["id"]))
    (approval,) = pending(harness)
    assert approval["state"] == "expired"
    assert harness.slack("#approvals")[-1]["text"].startswith("rejected by notifications:expiry")


def settlement_command(harness: Harness, sid: str, decision: str, actor: str) -> Outcome:
    value = json.dumps(
        {
            "settlement_id": sid,
            "decision": decision,
            "actor": actor,
            "at": datetime.now(UTC).isoformat(),
        }
    ).encode()
    result = harness.handle(harness.record(value, SETTLEMENT_COMMANDS.name, SETTLEMENT_COMMAND))
    assert isinstance(result, Outcome), result
    return result


def test_a_large_payment_approval_is_the_settlements_one_decision(harness: Harness) -> None:
    approval_workflow(harness, "large_payment")
    details = {
        "settlement_id": "stl_1",
        "payment_id": "pi_1",
        "amount_minor": "2500000",
        "currency": "USD",
    }
    harness.fire(
        trigger(
            "large_payment",
            pipeline="payment-settlement",
            details=details,
            dedup_key="large_payment:stl_1",
        )
    )
    (approval,) = pending(harness)
    assert approval["settlement_id"] == "stl_1" and approval["state"] == "pending"
    # Whichever door the decision came through, it is the first command on the partition.
    assert settlement_command(harness, "stl_1", "approve", "token:ana").status == "done"
    assert settlement_command(harness, "stl_1", "reject", "token:late").status == "skipped"
    (approval,) = pending(harness)
    assert (approval["state"], approval["answered_by"]) == ("approved", "token:ana")
    assert harness.slack("#approvals")[-1]["text"].startswith("approved by token:ana")


def test_a_burst_gives_one_message_per_key_and_one_digest_per_window(harness: Harness) -> None:
    harness.slack_channel("dead-letters", "#dead-letters")
    harness.email_channel("digest-mail")
    harness.workflow(
        "page once",
        "dead_letter",
        [
            {"type": "throttle", "key": "{{ pipeline }}", "limit": 1, "window_s": 3600},
            {"type": "notify", "channel": "dead-letters"},
        ],
    )
    harness.workflow(
        "digest",
        "dead_letter",
        [
            {
                "type": "digest",
                "key": "{{ pipeline }}",
                "window_s": 4,
                "channel": "digest-mail",
                "subject": "{{ count }} dead letters ({{ key }})",
            }
        ],
    )
    for i in range(120):
        pipeline = "payment-settlement" if i % 2 else "integration-delivery"
        assert harness.raw(trigger(pipeline=pipeline, subject_id=str(i), dedup_key=f"dl:{i}"))
    assert len(harness.slack("dead-letters")) == 2  # one per key (pipeline) in the window
    with harness.db.connect() as conn:
        windows = conn.execute(select(digests.c.id, digests.c.key, digests.c.window_end)).all()
    # Every (key, window) has one digest; the burst spans a few windows at most.
    assert len({(w.key, w.window_end) for w in windows}) == len(windows) <= 8
    time.sleep(
        max(0.0, (max(w.window_end for w in windows) - datetime.now(UTC)).total_seconds()) + 0.1
    )
    assert harness.tick() == len(windows)
    for window in windows:
        record = harness.record(
            json.dumps({"digest_id": window.id}).encode(), NOTIFICATION_COMMANDS.name
        )
        outcome = harness.run(harness.pipeline.handle(record))
        assert outcome.status == "done" and "already" not in outcome.detail, outcome
        again = harness.run(harness.pipeline.handle(record))  # a repeated flush sends nothing
        assert "already" in again.detail
    mails = harness.mails()
    assert len(mails) == len(windows)
    assert sum(int(m["subject"].split()[0]) for m in mails) == 120
    assert {m["subject"].split("(")[1].rstrip(")") for m in mails} == {
        "integration-delivery",
        "payment-settlement",
    }
