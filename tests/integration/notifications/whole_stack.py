"""Issue 13's proofs on a whole running stack: the API, worker and sandbox as subprocesses.

The stack is the ops tests' (:class:`~tests.integration.ops.ops_stack.OpsStack`: ``synapseops
api|worker|sandbox`` on free ports, a database of its own, retry tiers of 1, 2 and 3 s, a
worker group that starts at the topics' ends); the workflows are made through the management
API the way the demo makes them (:mod:`sandbox.demo_notifications`), and every count comes
from the sandbox's received logs (Slack) and its SMTP mailbox.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from sandbox.demo_notifications import WORKFLOWS
from schemas.models import NotificationTrigger
from streams.triggers import TriggerEncoder
from synapseops import headers as kh
from synapseops.ids import child_traceparent
from tests.integration.ops.ops_stack import OpsStack
from tests.integration.ops.traffic import StackTraffic
from topics.registry import NOTIFICATION_TRIGGERS

DEMO_TOKEN = "xoxb-synapseops-whole-stack"


def demo_workflow(name: str, changes: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The demo's workflow ``name`` as the demo creates it, with ``changes`` to its steps,
    ``{step index: {field: value}}`` (a test's shorter windows, its own channel names)."""
    (found,) = [w for w in WORKFLOWS if w["name"] == name]
    workflow = copy.deepcopy(found)
    for index, fields in changes.items():
        workflow["spec"]["steps"][index].update(fields)
    return workflow


class Notifications:
    """What one test set up through the API (its own names), disabled again at its end."""

    def __init__(self, traffic: StackTraffic) -> None:
        self.traffic = traffic
        self.suffix = uuid.uuid4().hex[:6]
        self.workflow_ids: list[int] = []

    def slack(self, name: str, channel: str, **extra: Any) -> str:
        """A Slack bot channel posting to ``channel``; its (suffixed) name."""
        body: dict[str, Any] = {"name": f"{name}-{self.suffix}", "kind": "slack_bot", **extra}
        body |= {"config": {"channel": channel}, "secret": DEMO_TOKEN}
        return str(self.traffic.api("POST", "/api/v1/notification-channels", json=body)["name"])

    def email(self, name: str, to: str) -> str:
        sandbox = self.traffic.stack.settings.sandbox
        config = {"host": sandbox.host, "port": sandbox.smtp_port, "to": [to]}
        config["from"] = "synapseops@example.test"
        body = {"name": f"{name}-{self.suffix}", "kind": "email", "config": config}
        return str(self.traffic.api("POST", "/api/v1/notification-channels", json=body)["name"])

    def workflow(self, workflow: dict[str, Any]) -> dict[str, Any]:
        body = {**workflow, "name": f"{workflow['name']} {self.suffix}"}
        made: dict[str, Any] = self.traffic.api("POST", "/api/v1/notification-workflows", json=body)
        self.workflow_ids.append(int(made["id"]))
        return made

    def close(self) -> None:
        for workflow_id in self.workflow_ids:
            self.traffic.api("POST", f"/api/v1/notification-workflows/{workflow_id}/disable")


class Sandbox:
    """The sandbox process's received logs."""

    def __init__(self, stack: OpsStack) -> None:
        self.url = stack.sandbox_url

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(f"{self.url}{path}", params=params, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def slack(self, channel: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get("/_sandbox/slack/messages", channel=channel)
        return found

    def mails(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get("/_sandbox/smtp/received")
        return found

    def attempts(self, target: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(f"/_sandbox/{target}/attempts")
        return found


def header(message: dict[str, Any]) -> str:
    """A Slack message's title: its Block Kit header's text."""
    return str(message["blocks"][0]["text"]["text"])


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def publish_triggers(stack: OpsStack, triggers: list[NotificationTrigger]) -> None:
    """Triggers onto the triggers topic as every service publishes them (Avro, a traceparent:
    :class:`streams.triggers.TriggerPublisher`), acknowledged by all in-sync replicas."""
    encoder = TriggerEncoder(stack.settings)
    producer = Producer({"bootstrap.servers": stack.kafka.bootstrap, "acks": "all"})
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    for trigger in triggers:
        headers: list[tuple[str, str | bytes | None]] = [
            (kh.TRACEPARENT, child_traceparent(None).encode())
        ]
        producer.produce(
            NOTIFICATION_TRIGGERS.name,
            encoder.encode(trigger),
            key=trigger.subject_id.encode(),
            headers=headers,
            on_delivery=delivered,
        )
        producer.poll(0)
    assert producer.flush(30) == 0 and not failures, failures


def settle(check: Callable[[], bool], quiet_s: float = 4.0) -> None:
    """Wait ``quiet_s`` more and require ``check`` to still hold: a message sent twice would
    arrive within that (the worker's tick is 0.5 s, the tiers 1-3 s)."""
    time.sleep(quiet_s)
    if not check():
        pytest.fail("a count changed after it was reached: something was sent twice")
