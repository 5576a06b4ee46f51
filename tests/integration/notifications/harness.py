"""The notification engine in this process against real PostgreSQL, Kafka, sandbox and SMTP."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy
from pydantic import SecretStr

from sandbox.harness import SandboxServer
from schemas.models import NotificationTrigger
from sinks.notifications.config import ConfigStore
from sinks.notifications.secrets import SecretBox
from streams.bootstrap import Runtime
from streams.notifications.engine import Engine
from streams.notifications.waker import Waker
from streams.road import Hop, Outcome, Pipeline, RoadRecord, process
from streams.triggers import TriggerEncoder
from synapseops.settings import (
    KafkaSettings,
    NotificationSettings,
    RetrySettings,
    SandboxSettings,
    Settings,
)
from topics.registry import NOTIFICATION_DISPATCH, NOTIFICATION_TRIGGERS

OFFSETS = itertools.count(1)


def settings_for(
    kafka_bootstrap: str, sandbox: SandboxServer, key: str | None = None, **notifications: Any
) -> Settings:
    return Settings(
        credentials_key=SecretStr(key) if key else None,
        kafka=KafkaSettings(bootstrap=kafka_bootstrap),
        retry=RetrySettings(tiers="1s,2s,3s"),
        sandbox=SandboxSettings(host=sandbox.host, port=sandbox.port, smtp_port=sandbox.smtp_port),
        notifications=NotificationSettings(
            **{"lease_s": 2.0, "max_rate_wait_s": 5.0, **notifications}
        ),
    )


def trigger(kind: str = "dead_letter", **fields: Any) -> NotificationTrigger:
    values: dict[str, Any] = {
        "kind": kind,
        "pipeline": "payment-settlement",
        "subject_id": "42",
        "summary": "payment-settlement: dead letter #42 after 4 attempt(s): TargetUnavailable",
        "details": {"dead_letter_id": "42", "error_class": "TargetUnavailable"},
        "occurred_at": datetime.now(UTC),
        "trace_id": "ab" * 16,
        **fields,
    }
    return NotificationTrigger.model_validate(values)


@dataclass
class Harness:
    settings: Settings
    db: sqlalchemy.Engine
    sandbox: SandboxServer
    runtime: Runtime
    engine: Engine
    pipeline: Pipeline
    config: ConfigStore
    loop: asyncio.AbstractEventLoop
    encoder: TriggerEncoder = field(init=False)

    def __post_init__(self) -> None:
        self.encoder = TriggerEncoder(self.settings)

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coroutine)

    def record(
        self, value: bytes, topic: str = NOTIFICATION_TRIGGERS.name, kind: str | None = None
    ) -> RoadRecord:
        headers = [("synapseops-message-kind", kind.encode())] if kind else []
        return RoadRecord(topic, 0, next(OFFSETS), None, b"k", value, headers)

    def fire(self, t: NotificationTrigger) -> Outcome | Hop:
        return self.handle(self.record(self.encoder.encode(t)))

    def raw(self, t: NotificationTrigger) -> Outcome:
        """The handler's answer itself (raises what it raises), off the road."""
        outcome: Outcome = self.run(self.pipeline.handle(self.record(self.encoder.encode(t))))
        return outcome

    def handle(self, record: RoadRecord) -> Outcome | Hop:
        result: Outcome | Hop = self.run(process(self.pipeline, record, self.runtime.router))
        return result

    def tick(self) -> int:
        count: int = self.run(Waker(self.engine).tick())
        return count

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.sandbox.url}{path}", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def slack(self, channel: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.get("/_sandbox/slack/messages", channel=channel)
        return messages

    def mails(self) -> list[dict[str, Any]]:
        mails: list[dict[str, Any]] = self.get("/_sandbox/smtp/received")
        return mails

    def slack_channel(self, name: str, channel: str, **extra: Any) -> dict[str, Any]:
        return self.config.create_channel(
            name=name,
            kind="slack_bot",
            config={"channel": channel},
            secret="xoxb-test-token",
            **extra,
        )

    def email_channel(self, name: str, to: str = "ops@example.test") -> dict[str, Any]:
        config = {
            "host": self.sandbox.host,
            "port": self.sandbox.smtp_port,
            "from": "synapseops@example.test",
            "to": [to],
        }
        return self.config.create_channel(name=name, kind="email", config=config, secret=None)

    def workflow(
        self, name: str, kind: str, steps: list[dict[str, Any]], **spec: Any
    ) -> dict[str, Any]:
        return self.config.create_workflow(
            name=name, trigger_kind=kind, enabled=True, spec={"steps": steps, **spec}, actor="test"
        )


def build(settings: Settings, database: str, sandbox: SandboxServer) -> Harness:
    loop = asyncio.new_event_loop()
    db = sqlalchemy.create_engine(database)
    runtime = Runtime.build(settings, db)
    engine = Engine(settings, db, runtime.producer)
    pipeline = Pipeline.declared(NOTIFICATION_DISPATCH, engine.handlers, settings)
    config = ConfigStore(db, SecretBox(settings))
    return Harness(settings, db, sandbox, runtime, engine, pipeline, config, loop)
