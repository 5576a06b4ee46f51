"""The engine's sends on every platform, against the sandbox over real HTTP and SMTP.

Slack chat.postMessage (Block Kit) and an incoming webhook, a Teams Workflows webhook (Adaptive
Card 1.5 under 28 KB), e-mail through the sandbox's aiosmtpd (plain + HTML); a trigger's
dedup_key; a 429 holds its run (no tier spent); a refusal for good to the dead letter or the
fallback channel.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from sandbox.harness import SandboxServer
from sinks.notifications.tables import digests, sends
from streams.notifications.messages import Message
from streams.road import Hop, Outcome
from tests.integration.databases import fresh_database
from tests.integration.notifications.harness import Harness, build, settings_for, trigger
from topics.admin import apply_topics
from topics.registry import NOTIFICATION_COMMANDS

COMMANDS = NOTIFICATION_COMMANDS.name

pytestmark = pytest.mark.integration


@pytest.fixture
def harness(database_url: str, sandbox: SandboxServer, kafka_bootstrap: str) -> Iterator[Harness]:
    with fresh_database(database_url, "t_notify") as url:
        settings = settings_for(kafka_bootstrap, sandbox)
        apply_topics(settings)
        harness = build(settings, url, sandbox)
        yield harness
        harness.run(harness.engine.delivery.senders.aclose())
        harness.db.dispose()


def test_a_dead_letter_reaches_slack_once_whatever_the_repeats(harness: Harness) -> None:
    harness.slack_channel("dead-letters", "#dead-letters")
    harness.workflow(
        "dead letters to slack",
        "dead_letter",
        [{"type": "notify", "channel": "dead-letters", "title": "Dead letter {{ subject_id }}"}],
    )
    repeat = trigger(dedup_key="dead_letter:payment-settlement.dlq:0:7")
    results = [harness.fire(repeat) for _ in range(3)]
    assert all(isinstance(r, Outcome) and r.status == "done" for r in results)
    messages = harness.slack("dead-letters")
    assert len(messages) == 1
    blocks = messages[0]["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Dead letter 42"}}
    assert any(b["type"] == "section" and "fields" in b for b in blocks)


def test_webhook_teams_and_email_each_get_the_message(harness: Harness) -> None:
    hooks = harness.get("/_sandbox/slack/webhooks")["webhooks"]
    hook = next(h for h in hooks if h["name"] == "alerts")["url"]
    harness.config.create_channel(name="alerts-hook", kind="slack_webhook", config={}, secret=hook)
    teams = (
        f"{harness.sandbox.url}/teams/workflows/wf1/triggers/manual/paths/invoke"
        "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=s3cret"
    )
    harness.config.create_channel(name="ops-teams", kind="teams_workflow", config={}, secret=teams)
    harness.email_channel("ops-mail")
    long_text = "{% for i in range(6000) %}xxxxxxxxxx{% endfor %}"  # 60 KB: cut, not refused
    harness.workflow(
        "everywhere",
        "integration_failure",
        [
            {"type": "notify", "channel": "alerts-hook"},
            {"type": "notify", "channel": "ops-teams", "text": long_text},
            {"type": "notify", "channel": "ops-mail", "subject": "Failure: {{ subject_id }}"},
        ],
    )
    result = harness.raw(
        trigger("integration_failure", pipeline="integration-delivery", summary="run r1 failed")
    )
    assert isinstance(result, Outcome), result
    assert [m["via"] for m in harness.slack("alerts")] == ["webhook"]
    cards = harness.get("/_sandbox/teams/messages", webhook="wf1")
    assert len(cards) == 1 and cards[0]["card_versions"] == ["1.5"] and cards[0]["size"] < 28 * 1024
    (mail,) = harness.mails()
    assert mail["subject"] == "Failure: 42"
    assert "run r1 failed" in mail["body"] and "<h2>run r1 failed</h2>" in mail["html"]
    assert list(harness.get("/_sandbox/smtp/message-ids").values()) == [1]


def test_slack_429_holds_the_run_off_the_tiers_and_loses_nothing(harness: Harness) -> None:
    """A 429 is not an attempt: its record is done (no retry tier spent), its run waits for
    the Retry-After at the same step, and a resume sends it — each message once."""
    # The channel's own gate would space the sends; open it wide so Slack itself answers 429.
    harness.slack_channel("payments", "#payments", rate_per_s=1000.0)
    harness.workflow("burst", "custom_burst", [{"type": "notify", "channel": "payments"}])
    results = [
        harness.fire(trigger("custom_burst", subject_id=f"s{i}", dedup_key=f"b{i}"))
        for i in range(6)
    ]
    assert all(isinstance(r, Outcome) and r.status == "done" for r in results), results
    held = [r for r in results if isinstance(r, Outcome) and "held until" in r.detail]
    assert held, "the sandbox's burst of 1/s per channel never answered 429"
    assert len(harness.slack("payments")) == len(results) - len(held)
    deadline = time.monotonic() + 60
    while len(harness.slack("payments")) < len(results) and time.monotonic() < deadline:
        time.sleep(0.5)
        for run_id in harness.engine.runs.due_runs(datetime.now(UTC), 2.0):
            command = json.dumps({"run_id": run_id}).encode()
            assert isinstance(harness.handle(harness.record(command, COMMANDS)), Outcome)
    titles = [m["text"].split("\n")[0] for m in harness.slack("payments")]
    assert len(titles) == len(results)
    with harness.db.connect() as conn:
        attempts = conn.execute(select(sends.c.attempts, sends.c.state)).all()
    assert {(row.attempts, row.state) for row in attempts} == {(1, "sent")}


def test_a_send_held_past_max_hold_rides_the_tiers(
    database_url: str, sandbox: SandboxServer, kafka_bootstrap: str
) -> None:
    """The hold has an end: a send first tried longer ago than ``max_hold_s`` is a plain
    RateLimited again, on the retry road (to a dead letter after the last tier)."""
    with fresh_database(database_url, "t_notify") as url:
        settings = settings_for(kafka_bootstrap, sandbox, max_hold_s=0.001)
        harness = build(settings, url, sandbox)
        try:
            harness.slack_channel("payments", "#payments", rate_per_s=1000.0)
            harness.workflow("burst", "custom_burst", [{"type": "notify", "channel": "payments"}])
            fault(sandbox, status=429, retry_after_s=1, count=1)
            result = harness.fire(trigger("custom_burst", dedup_key="held-too-long"))
            assert isinstance(result, Hop) and not result.dead, result
        finally:
            harness.run(harness.engine.delivery.senders.aclose())
            harness.db.dispose()


def test_a_digest_whose_channel_answers_429_is_flushed_after_retry_after(
    harness: Harness,
) -> None:
    harness.slack_channel("digests", "#ops")
    harness.workflow(
        "digest to slack",
        "dead_letter",
        [{"type": "digest", "key": "{{ pipeline }}", "window_s": 1, "channel": "digests"}],
    )
    assert harness.raw(trigger(dedup_key="dl:held"))
    with harness.db.connect() as conn:
        (digest_id, window_end) = conn.execute(select(digests.c.id, digests.c.window_end)).one()
    time.sleep(max(0.0, (window_end - datetime.now(UTC)).total_seconds()) + 0.1)
    fault(sandbox=harness.sandbox, status=429, retry_after_s=2, count=1)
    flush = harness.record(json.dumps({"digest_id": digest_id}).encode(), COMMANDS)
    held = harness.handle(flush)
    assert isinstance(held, Outcome) and "held until" in held.detail, held
    assert harness.engine.windows.due_digests(datetime.now(UTC), 2.0) == []  # not before then
    time.sleep(2.2)
    assert harness.engine.windows.due_digests(datetime.now(UTC), 2.0) == [digest_id]
    sent = harness.handle(flush)
    assert isinstance(sent, Outcome) and "of 1 sent" in sent.detail, sent
    assert len(harness.slack("ops")) == 1


def fault(sandbox: SandboxServer, **spec: object) -> None:
    body = {"target": "slack", "path_prefix": "/slack/api/chat.postMessage", **spec}
    httpx.post(f"{sandbox.url}/_sandbox/faults", json=body, timeout=10).raise_for_status()


def test_a_refusal_for_good_dead_letters_or_falls_back(harness: Harness) -> None:
    fallback = harness.email_channel("fallback-mail")
    harness.slack_channel("archived", "#nope-not-a-channel")
    harness.slack_channel("with-fallback", "#nope-either", fallback_channel_id=fallback["id"])
    harness.workflow("doomed", "custom_a", [{"type": "notify", "channel": "archived"}])
    harness.workflow("saved", "custom_b", [{"type": "notify", "channel": "with-fallback"}])
    dead = harness.fire(trigger("custom_a"))
    assert isinstance(dead, Hop) and dead.dead
    saved = harness.fire(trigger("custom_b"))
    assert isinstance(saved, Outcome) and saved.status == "done"
    assert len(harness.mails()) == 1


def test_a_dead_letter_of_this_pipeline_starts_no_workflow(harness: Harness) -> None:
    harness.slack_channel("dead-letters", "#dead-letters")
    harness.workflow("dead letters", "dead_letter", [{"type": "notify", "channel": "dead-letters"}])
    own = trigger(pipeline="notification-dispatch")
    result = harness.fire(own)
    assert isinstance(result, Outcome) and result.status == "skipped"
    assert harness.slack("dead-letters") == []
    httpx.get(f"{harness.sandbox.url}/_sandbox/health").raise_for_status()


def test_a_slack_send_whose_answer_was_lost_is_found_not_sent_again(harness: Harness) -> None:
    """The process died after Slack took the message and before the send row said so: the
    redo finds the message by the idempotency key in its metadata."""
    row = harness.slack_channel("ops", "#ops")
    delivery = harness.engine.delivery
    channel = delivery._open(harness.engine.runs.channel(channel_id=row["id"]) or {})
    message = Message(title="once", text="only once", metadata={"idempotency_key": "r1:0"})
    assert harness.engine.runs.begin_send("r1:0", row["id"], "slack_bot", None, None) == 1
    harness.run(delivery.senders.send(channel, message, "r1:0"))  # ... and the process dies
    receipt = harness.run(delivery._send(channel, message, "r1:0", None, None))
    assert receipt["found"] is True
    assert len(harness.slack("#ops")) == 1
    assert harness.engine.runs.send_state("r1:0") == ("sent", receipt)
