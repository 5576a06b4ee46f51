"""Sending: a message once per idempotency key on a named channel, its fallback, digests.

The send row is written ``sending`` before the call and ``sent`` with the platform's receipt
after it; a ``sent`` key is never sent again. A refusal for good (a revoked token, an unknown
channel, a card too large) tries the channel's fallback, under the key ``<key>:fallback``,
before it fails the record. A crash between the platform's answer and the ``sent`` row —
milliseconds — sends that one message again on the redo: the platforms here take no
idempotency key (see docs/NEXT.md).

A refusal *for now* — a 429 with its ``Retry-After``, or the channel's rate gate — is not an
attempt (:class:`~synapseops.errors.SendHeld`): the caller parks its run (or digest) until
then, off the retry tiers, so a rate limit longer than every tier delays messages without
dead-lettering one.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
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
from synapseops.errors import ChannelUnknown, FatalError, RateLimited, RetryableError, SendHeld
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import NOTIFICATION_COMMANDS, NOTIFICATION_DISPATCH, NOTIFICATION_RESUME

log = get_logger(__name__)
# A hold is never shorter than this: a Retry-After of 0 must not spin the run.
MIN_HOLD_S = 0.2


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
        self.max_hold_s = settings.notifications.max_hold_s

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
        except RateLimited as exc:
            held = await self._held(channel, key, exc)
            if held is None:
                raise
            raise held from exc
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

    async def _held(self, channel: Channel, key: str, exc: RateLimited) -> SendHeld | None:
        """What a refusal for now becomes: :class:`SendHeld` until its ``Retry-After`` (the
        try not counted), or None once the send has been held past ``max_hold_s`` since its
        first try (the refusal rides the tiers then, to a dead letter at the end)."""
        metrics.MESSAGES.labels(channel.kind, "held").inc()
        first = await asyncio.to_thread(self.runs.send_held, key, str(exc))
        now = now_utc()
        if first is None or (now - first).total_seconds() > self.max_hold_s:
            return None
        wait = max(exc.retry_after or 1.0, MIN_HOLD_S)
        until = now + timedelta(seconds=wait)
        return SendHeld(f"{exc}; held until {until.isoformat()}", until=until, retry_after=wait)

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
