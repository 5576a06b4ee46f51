"""The platforms' clients: Slack (Web API and incoming webhooks), Teams Workflows, SMTP.

Each answer becomes the error tree (``sinks/http.py`` for HTTP): Slack's HTTP-200
``{ok: false}`` errors are read here — ``ratelimited`` is :class:`RateLimited`, a token or
channel problem is :class:`TargetRejected` (fatal), ``internal_error``/``service_unavailable``
are retryable. SMTP: a 4xx reply or a lost connection is retryable, a 5xx is fatal.

Per-channel rate limits (:class:`RateGate`): Slack allows about one message per second per
channel, Teams four per second per webhook; a send waits for its slot in-process up to
``SYNAPSEOPS_NOTIFICATIONS_MAX_RATE_WAIT_S`` and is refused with :class:`RateLimited` (its
``retry_after`` the next slot) when the wait would be longer — the engine holds the run until
then (``streams/notifications/delivery.py``). A 429's ``Retry-After`` also closes the gate for
that long, so the next sends to that channel wait as well instead of being refused one by one.

The e-mail's ``Message-ID`` is derived from the send's idempotency key, so a mailbox can tell
a duplicate; no secret (token, webhook URL, password) is ever put in an error or a receipt.
"""

from __future__ import annotations

import asyncio
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from sinks.http import HttpTarget
from sinks.http_guard import OutboundPolicy
from streams.notifications.messages import Message, email_parts, slack_payload, teams_body
from synapseops.errors import (
    RateLimited,
    TargetRejected,
    TargetUnavailable,
)
from synapseops.redaction import scrub
from synapseops.settings import Settings

DEFAULT_RATES = {"slack_bot": 1.0, "slack_webhook": 1.0, "teams_workflow": 4.0, "email": 10.0}
_SLACK_RETRYABLE = {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}


@dataclass(frozen=True)
class Channel:
    """A channel opened for sending: its configuration and its clear secret."""

    id: int
    name: str
    kind: str
    config: dict[str, Any]
    secret: SecretStr | None
    rate_per_s: float | None
    fallback_channel_id: int | None

    @property
    def rate(self) -> float:
        return self.rate_per_s or DEFAULT_RATES[self.kind]


class RateGate:
    """At most ``rate`` sends per second, one slot after another; closed after a 429."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_free = 0.0
        self.lock = asyncio.Lock()

    async def wait(self, max_wait_s: float, what: str) -> None:
        async with self.lock:
            now = time.monotonic()
            wait = max(0.0, self.next_free - now)
            if wait > max_wait_s:
                raise RateLimited(f"{what}: rate limit, next slot in {wait:.1f}s", retry_after=wait)
            self.next_free = max(now, self.next_free) + self.interval
        if wait:
            await asyncio.sleep(wait)

    def hold(self, seconds: float) -> None:
        self.next_free = max(self.next_free, time.monotonic() + seconds)


class Senders:
    """Sends one message on one channel; one instance per process (gates and clients shared)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.guard = OutboundPolicy.parse(settings.outbound_allowed_hosts)
        self.gates: dict[int, RateGate] = {}
        self.clients: dict[str, HttpTarget] = {}

    def _client(self, base: str) -> HttpTarget:
        client = self.clients.get(base)
        if client is None:
            client = self.clients[base] = HttpTarget(
                "notification channel",
                base,
                timeout_s=10.0,
                guard=self.guard,
                max_response_bytes=self.settings.http.max_response_bytes,
            )
        return client

    async def send(
        self, channel: Channel, message: Message, key: str, *, redo: bool = False
    ) -> dict[str, Any]:
        """Send ``message``; the receipt (what the platform answered) when it took it.

        ``redo``: an earlier attempt of this key may have reached the platform (the process
        died before recording the answer). A Slack bot channel is then asked first — its
        history, with our idempotency key in each message's metadata — and a message found
        there is the receipt, not sent again. Webhooks and SMTP cannot be asked.
        """
        gate = self.gates.setdefault(channel.id, RateGate(channel.rate))
        await gate.wait(self.settings.notifications.max_rate_wait_s, f"channel {channel.name}")
        try:
            if channel.kind == "slack_bot":
                if redo and (found := await self._slack_find(channel, key)) is not None:
                    return found
                return await self._slack_bot(channel, message)
            if channel.kind == "slack_webhook":
                return await self._post_url(channel, slack_payload(message), "slack webhook")
            if channel.kind == "teams_workflow":
                return await self._post_url(channel, teams_body(message), "teams workflow")
            return await asyncio.to_thread(self._smtp, channel, message, key)
        except RateLimited as exc:
            gate.hold(exc.retry_after or 1.0)
            raise

    async def _slack_bot(self, channel: Channel, message: Message) -> dict[str, Any]:
        token = channel.secret.get_secret_value() if channel.secret else ""
        body = {"channel": channel.config.get("channel", ""), **slack_payload(message)}
        base = self.settings.slack_api_url
        response = await self._client(base).request(
            "POST",
            f"{base}/chat.postMessage",
            json_body=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        answer = response.json() or {}
        if answer.get("ok"):
            return {"channel": answer.get("channel"), "ts": answer.get("ts")}
        error = str(answer.get("error") or "unknown_error")
        if error in ("ratelimited", "rate_limited"):
            raise RateLimited(f"slack {channel.name}: {error}", retry_after=1.0)
        if error in _SLACK_RETRYABLE:
            raise TargetUnavailable(f"slack {channel.name}: {error}")
        detail = f"slack {channel.name}: {error} {answer.get('errors') or ''}".strip()
        raise TargetRejected(detail, status=response.status)

    async def _slack_find(self, channel: Channel, key: str) -> dict[str, Any] | None:
        """The channel's recent message carrying ``key`` in its metadata, as a receipt."""
        token = channel.secret.get_secret_value() if channel.secret else ""
        base = self.settings.slack_api_url
        response = await self._client(base).request(
            "POST",
            f"{base}/conversations.history",
            json_body={
                "channel": channel.config.get("channel", ""),
                "limit": 200,
                "include_all_metadata": "true",
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        answer = response.json() or {}
        for message in answer.get("messages") or []:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("idempotency_key") == key:
                return {
                    "channel": channel.config.get("channel"),
                    "ts": message.get("ts"),
                    "found": True,
                }
        return None

    async def _post_url(self, channel: Channel, body: Any, what: str) -> dict[str, Any]:
        url = channel.secret.get_secret_value() if channel.secret else ""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TargetRejected(
                f"{what} {channel.name}: the stored URL is not an http(s) URL", status=0
            )
        base = f"{parts.scheme}://{parts.netloc}"
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if isinstance(body, bytes):
            response = await self._client(base).request(
                "POST", path, content=body, headers={"Content-Type": "application/json"}
            )
        else:
            response = await self._client(base).request("POST", path, json_body=body)
        text = response.body[:200].decode("utf-8", "replace")
        if "HTTP error 413" in text:  # the legacy connector answers 200 for a refusal
            raise TargetRejected(f"{what} {channel.name}: {scrub(text)}", status=413)
        return {"status": response.status}

    def _smtp(self, channel: Channel, message: Message, key: str) -> dict[str, Any]:
        config = channel.config
        subject, plain, page = email_parts(message)
        mail = EmailMessage()
        mail["From"] = str(config.get("from", "synapseops@localhost"))
        mail["To"] = ", ".join(config.get("to", []))
        mail["Subject"] = subject
        mail["Date"] = formatdate(localtime=False)
        message_id = f"<{key.replace(':', '.')}@synapseops>"
        mail["Message-ID"] = message_id
        mail.set_content(plain)
        mail.add_alternative(page, subtype="html")
        host, port = str(config.get("host", "127.0.0.1")), int(config.get("port", 25))
        timeout = self.settings.notifications.smtp_timeout_s
        try:
            with smtplib.SMTP(host, port, timeout=timeout) as smtp:
                if config.get("starttls"):
                    smtp.starttls()
                if config.get("username") and channel.secret is not None:
                    smtp.login(str(config["username"]), channel.secret.get_secret_value())
                smtp.send_message(mail)
        except smtplib.SMTPResponseException as exc:
            reason = f"smtp {channel.name} answered {exc.smtp_code}"
            if 400 <= exc.smtp_code < 500:
                raise TargetUnavailable(reason, status=exc.smtp_code) from exc
            raise TargetRejected(reason, status=exc.smtp_code) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise TargetRejected(
                f"smtp {channel.name} refused every recipient", status=550
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TargetUnavailable(
                f"smtp {channel.name} unreachable: {type(exc).__name__}"
            ) from exc
        return {"message_id": message_id, "to": config.get("to", [])}

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
