"""``/api/v1/approvals``, ``/notification-channels``, ``/notification-workflows`` and
``/notification-runs`` over uvicorn, with the engine in this process on the same database,
broker and sandbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr

from api.main import create_app
from api.server import serving_in_thread
from sandbox.demo_notifications import ensure_notifications
from sandbox.harness import SandboxServer
from sinks.principals.store import create_token
from streams.payments.events import parse_command
from streams.road import Outcome
from synapseops.kafka import consumer_config
from synapseops.principals import Role
from synapseops.settings import ApiSettings, DatabaseSettings
from tests.integration.databases import fresh_database
from tests.integration.notifications.harness import Harness, build, settings_for, trigger
from topics.admin import apply_topics
from topics.registry import SETTLEMENT_COMMAND, SETTLEMENT_COMMANDS

pytestmark = pytest.mark.integration
TOKEN = f"itest-{uuid.uuid4().hex}"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def stack(
    database_url: str, sandbox: SandboxServer, kafka_bootstrap: str
) -> Iterator[tuple[Harness, str]]:
    with fresh_database(database_url, "t_notify_api") as url:
        settings = settings_for(kafka_bootstrap, sandbox)
        apply_topics(settings)
        harness = build(settings, url, sandbox)
        own = settings.model_copy(
            update={
                "database": DatabaseSettings(url=SecretStr(url)),
                "api": ApiSettings(token=SecretStr(TOKEN)),
            }
        )
        with serving_in_thread(create_app(own)) as served:
            yield harness, f"{served}/api/v1"
        harness.run(harness.engine.delivery.senders.aclose())
        harness.db.dispose()


def bearer(harness: Harness, role: Role) -> dict[str, str]:
    _, minted = create_token(
        harness.db, name=f"t-{uuid.uuid4().hex[:8]}", roles=[role], created_by="t"
    )
    return {"Authorization": f"Bearer {minted.token}"}


def call(method: str, url: str, headers: dict[str, str], body: Any = None) -> httpx.Response:
    return httpx.request(method, url, headers=headers, json=body, timeout=30)


def ask(harness: Harness, kind: str, **fields: Any) -> None:
    harness.slack_channel(f"ask-{kind}", "#approvals")
    harness.workflow(
        f"ask {kind}",
        kind,
        [
            {"type": "wait_for_approval", "channel": f"ask-{kind}"},
            {"type": "notify", "channel": f"ask-{kind}", "title": "{{ approval.decision }}"},
        ],
    )
    assert isinstance(harness.fire(trigger(kind, **fields)), Outcome)


def test_the_inbox_answers_once_and_a_viewer_cannot_answer(stack: tuple[Harness, str]) -> None:
    harness, api = stack
    ask(harness, "custom_change")
    viewer, approver = bearer(harness, Role.VIEWER), bearer(harness, Role.APPROVER)
    inbox = call("GET", f"{api}/approvals?state=pending", viewer).json()
    (item,) = inbox["items"]
    assert item["trigger_kind"] == "custom_change" and item["age_s"] >= 0
    refused = call("POST", f"{api}/approvals/{item['id']}/approve", viewer, {"reason": "x"})
    assert refused.status_code == 403
    answered = call("POST", f"{api}/approvals/{item['id']}/approve", approver, {"reason": "ok"})
    assert answered.status_code == 200, answered.text
    assert answered.json()["actor"].startswith("token:")
    again = call("POST", f"{api}/approvals/{item['id']}/reject", approver, {})
    assert again.status_code == 409
    assert harness.run(harness.engine.advance(item["run_id"])) == "done"
    assert harness.slack("#approvals")[-1]["text"].startswith("approved")
    run = call("GET", f"{api}/notification-runs/{item['run_id']}", viewer).json()
    assert run["state"] == "done" and [s["state"] for s in run["sends"]] == ["sent", "sent"]
    assert run["sends"][0]["receipt"]["ts"]


def read(harness: Harness, partition: int, offset: int) -> Any:
    consumer = Consumer(consumer_config(harness.settings.kafka, f"t-{uuid.uuid4().hex}"))
    try:
        consumer.assign([TopicPartition(SETTLEMENT_COMMANDS.name, partition, offset)])
        for _ in range(100):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                return message
        raise AssertionError("no command published")
    finally:
        consumer.close()


def test_a_large_payment_answered_in_the_inbox_is_the_settlements_command(
    stack: tuple[Harness, str],
) -> None:
    harness, api = stack
    details = {"settlement_id": "stl_9", "payment_id": "pi_9", "amount_minor": "5000000"}
    ask(harness, "large_payment", details=details, dedup_key="large_payment:stl_9")
    approver = bearer(harness, Role.APPROVER)
    (item,) = call("GET", f"{api}/approvals?state=pending", approver).json()["items"]
    accepted = call("POST", f"{api}/approvals/{item['id']}/approve", approver, {"reason": "ok"})
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    message = read(harness, body["partition"], body["offset"])
    assert message.key() == b"pi_9"
    command = parse_command(message.value())  # the payment service's own reader takes it
    assert (command.settlement_id, command.decision) == ("stl_9", "approve")
    # Not answered by the route: by the first command on the settlement's partition.
    assert call("GET", f"{api}/approvals/{item['id']}", approver).json()["state"] == "pending"
    record = harness.record(message.value(), SETTLEMENT_COMMANDS.name, SETTLEMENT_COMMAND)
    assert isinstance(harness.handle(record), Outcome)
    answered = call("GET", f"{api}/approvals/{item['id']}", approver).json()
    assert (answered["state"], answered["answered_by"]) == ("approved", command.actor)


def test_a_link_for_another_decision_is_refused(stack: tuple[Harness, str]) -> None:
    harness, api = stack
    ask(harness, "custom_link")
    approver = bearer(harness, Role.APPROVER)
    (item,) = call("GET", f"{api}/approvals", approver).json()["items"]
    token = harness.engine.links.token(item["id"], "reject")
    wrong = call("POST", f"{api}/approvals/{item['id']}/approve", approver, {"link_token": token})
    assert wrong.status_code == 422
    forged = call("POST", f"{api}/approvals/{item['id']}/reject", approver, {"link_token": "x.y"})
    assert forged.status_code == 422
    right = call("POST", f"{api}/approvals/{item['id']}/reject", approver, {"link_token": token})
    assert right.status_code == 200


def test_channels_keep_their_secret_and_send_a_test_message(stack: tuple[Harness, str]) -> None:
    harness, api = stack
    viewer = bearer(harness, Role.VIEWER)
    body = {
        "name": "ops",
        "kind": "slack_bot",
        "config": {"channel": "#ops"},
        "secret": "xoxb-secret-1",
    }
    assert call("POST", f"{api}/notification-channels", viewer, body).status_code == 403
    created = call("POST", f"{api}/notification-channels", ADMIN, body)
    assert created.status_code == 201, created.text
    listed = call("GET", f"{api}/notification-channels", viewer)
    assert "xoxb-secret-1" not in listed.text and listed.json()[0]["has_secret"] is True
    bad = call(
        "POST", f"{api}/notification-channels", ADMIN, {**body, "name": "x", "secret": "nope"}
    )
    assert bad.status_code == 422
    sent = call("POST", f"{api}/notification-channels/{created.json()['id']}/test", ADMIN, {})
    assert sent.status_code == 200, sent.text
    assert sent.json()["receipt"]["ts"] and harness.slack("#ops")[0]["text"].startswith(
        "SynapseOps"
    )


def test_workflows_are_versioned_checked_and_dry_run(stack: tuple[Harness, str]) -> None:
    harness, api = stack
    harness.slack_channel("ops", "#ops")
    steps = [{"type": "notify", "channel": "ops", "title": "{{ details.amount_minor }}"}]
    body = {"name": "w", "trigger_kind": "custom_w", "spec": {"steps": steps}}
    unknown = {**body, "spec": {"steps": [{"type": "notify", "channel": "nowhere"}]}}
    assert call("POST", f"{api}/notification-workflows", ADMIN, unknown).status_code == 422
    broken = {
        **body,
        "spec": {"steps": [{"type": "notify", "channel": "ops", "title": "{% if %}"}]},
    }
    assert call("POST", f"{api}/notification-workflows", ADMIN, broken).status_code == 422
    created = call("POST", f"{api}/notification-workflows", ADMIN, body).json()
    assert created["version"] == 1
    wid = created["id"]
    updated = call("PUT", f"{api}/notification-workflows/{wid}", ADMIN, {**body, "enabled": False})
    assert updated.json()["version"] == 2 and updated.json()["enabled"] is False
    versions = call("GET", f"{api}/notification-workflows/{wid}/versions", ADMIN).json()
    assert [v["version"] for v in versions] == [2, 1]
    viewer = bearer(harness, Role.VIEWER)
    sample = {"trigger": {"kind": "custom_w", "details": {"amount_minor": "77"}}}
    dry = call("POST", f"{api}/notification-workflows/{wid}/dry-run", viewer, sample)
    assert dry.status_code == 200, dry.text
    (step,) = dry.json()["steps"]
    assert step["message"]["slack"]["blocks"][0]["text"]["text"] == "77"
    preview = call(
        "POST",
        f"{api}/notification-workflows/preview",
        viewer,
        {"title": "{{ summary }}!", "channel_kind": "teams_workflow", "trigger": {"kind": "x"}},
    ).json()
    assert preview["title"] == "a sample trigger!" and preview["teams"]["type"] == "message"
    # Disabled: a trigger of its kind starts nothing; enabled again, it does.
    assert harness.fire(trigger("custom_w")) == Outcome(
        "skipped", "no enabled workflow for custom_w"
    )
    assert call("POST", f"{api}/notification-workflows/{wid}/enable", ADMIN).json()["enabled"]
    assert isinstance(harness.fire(trigger("custom_w", dedup_key="w2")), Outcome)
    assert len(harness.slack("#ops")) == 1
    runs = call("GET", f"{api}/notification-runs?state=done", viewer).json()
    assert runs["total"] == 1 and runs["items"][0]["workflow"] == "w"
    json.dumps(runs)


class ApiClient:
    def __init__(self, api: str) -> None:
        self.base = api.removesuffix("/api/v1")

    def _get(self, path: str, **params: Any) -> Any:
        return call("GET", f"{self.base}{path}", ADMIN).json()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = call("POST", f"{self.base}{path}", ADMIN, body)
        assert response.status_code == 201, response.text
        return response.json()


def test_the_demo_setup_is_valid_and_made_once(stack: tuple[Harness, str]) -> None:
    harness, api = stack
    client, box = ApiClient(api), harness.sandbox
    assert ensure_notifications(client, box.url, box.host, box.smtp_port) == 4
    assert ensure_notifications(client, box.url, box.host, box.smtp_port) == 0
    details = {
        "settlement_id": "stl_d",
        "payment_id": "pi_d",
        "amount_minor": "9",
        "currency": "USD",
    }
    assert isinstance(harness.fire(trigger("large_payment", details=details)), Outcome)
    asked = harness.slack("#approvals")[0]
    assert asked["text"].startswith("Approve payment pi_d?")
    harness.fire(trigger("integration_failure", subject_id="run_1", summary="ERP said 500"))
    (card,) = harness.get("/_sandbox/teams/messages", webhook="demo-integrations")
    assert card["cards"][0]["body"][0]["text"] == "Integration failure: run_1"
    harness.fire(trigger(dedup_key="dl:demo"))
    assert harness.slack("#dead-letters")[0]["text"].startswith("Dead letter #42")
