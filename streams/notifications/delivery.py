"""Sending: a message once per idempotency key on a named channel, its fallback, digests.

The send row is written ``sending`` before the call and ``sent`` with the platform's receipt
after it; a ``sent`` key is never sent again. A refusal for good (a revoked token, an unknown
channel, a card too large) tries the channel's fallback, under the key ``<key>:fallback``,
before it fails the record. A crash between the platform's answer and the ``sent`` row —
milliseconds — sends that one message again on the redo: the platforms here take no
idempotency key (see docs/NEXT.md).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from sinks.notifications.approvals import WindowStore
from sinks.notifications.secrets import SecretBox
from sinks.notifications.senders import Channel, Senders
from sinks.notifications.store import RunStore
from streams.notifications import metrics
from streams.notifications.messages import Message
from streams.notifications.model import DigestStep
from streams.notifications.templates import render
from synapseops import headers as kh
from synapseops.errors import ChannelUnknown, FatalError, RetryableError
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import NOTIFICATION_COMMANDS, NOTIFICATION_DISPATCH, NOTIFICATION_RESUME

log = get_logger(__name__)


def now_utc() -> datetime:
    return datetime.now(UTC)


class Delivery:
    def __init__(
        self,
        settings: Settings,
        runs: RunStore,
        windows: WindowStore,
        producer: AsyncProducer,
    ) -> None:
        self.runs = runs
        self.windows = windows
        self.senders = Senders(settings)
        self.box = SecretBox(settings)
        self.producer = producer

    async def deliver(
        self, channel_name: str, message: Message, key: str, *, run_id: str | None, step: int | None
    ) -> dict[str, Any]:
        """Send once per ``key`` on the named channel (its fallback when it refuses for good)."""
        row = await asyncio.to_thread(self.runs.channel, name=channel_name)
        if row is None or not row["enabled"]:
            raise ChannelUnknown(f"no enabled channel {channel_name!r}")
        try:
            return await self._send(self._open(row), message, key, run_id, step)
        except FatalError:
            if row["fallback_channel_id"] is None:
                raise
            fallback = await asyncio.to_thread(
                self.runs.channel, channel_id=row["fallback_channel_id"]
            )
            if fallback is None or not fallback["enabled"]:
                raise
            metrics.MESSAGES.labels(row["kind"], "fallback").inc()
            return await self._send(self._open(fallback), message, f"{key}:fallback", run_id, step)

    def _open(self, row: dict[str, Any]) -> Channel:
        return Channel(
            id=row["id"],
            name=row["name"],
            kind=row["kind"],
            config=row["config"],
            secret=self.box.open(row["secret"]),
            rate_per_s=row["rate_per_s"],
            fallback_channel_id=row["fallback_channel_id"],
        )

    async def _send(
        self, channel: Channel, message: Message, key: str, run_id: str | None, step: int | None
    ) -> dict[str, Any]:
        found = await asyncio.to_thread(self.runs.send_state, key)
        if found is not None and found[0] == "sent":
            return found[1] or {}
        attempt = await asyncio.to_thread(
            self.runs.begin_send, key, channel.id, channel.kind, run_id, step
        )
        try:
            receipt = await self.senders.send(channel, message, key, redo=attempt > 1)
        except RetryableError as exc:
            metrics.MESSAGES.labels(channel.kind, "retry").inc()
            await asyncio.to_thread(self.runs.send_failed, key, str(exc), False)
            raise
        except FatalError as exc:
            metrics.MESSAGES.labels(channel.kind, "failed").inc()
            await asyncio.to_thread(self.runs.send_failed, key, str(exc), True)
            raise
        await asyncio.to_thread(self.runs.sent, key, receipt, now_utc())
        metrics.MESSAGES.labels(channel.kind, "sent").inc()
        log.info(
            "notification sent",
            extra={
                "channel": channel.name,
                "idempotency_key": key,
                "pipeline": NOTIFICATION_DISPATCH,
            },
        )
        return receipt

    async def flush_digest(self, digest_id: int) -> str:
        digest = await asyncio.to_thread(self.windows.digest, digest_id)
        if digest is None or digest["sent_at"] is not None:
            return f"digest #{digest_id} already sent"
        step = DigestStep.model_validate(digest["template"])
        values = {
            "count": digest["count"],
            "items": digest["items"],
            "key": digest["key"],
            "window_end": digest["window_end"].isoformat(),
            "kind": digest["key"].split(":")[0],
        }
        message = Message(
            title=render(step.title, values),
            text=render(step.text, values),
            subject=render(step.subject, values) if step.subject else None,
            metadata={"idempotency_key": f"digest:{digest_id}"},
        )
        await self.deliver(step.channel, message, f"digest:{digest_id}", run_id=None, step=None)
        await asyncio.to_thread(self.windows.digest_sent, digest_id, now_utc())
        return f"digest #{digest_id} of {digest['count']} sent"

    async def publish_resume(self, value: dict[str, Any], key: str) -> None:
        headers = [(kh.MESSAGE_KIND, NOTIFICATION_RESUME.encode())]
        await self.producer.send(
            NOTIFICATION_COMMANDS.name,
            json.dumps(value).encode(),
            key=key.encode(),
            headers=headers,
        )
