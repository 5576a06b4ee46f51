"""An SMTP server (aiosmtpd) that keeps every message it accepts, in the sandbox's process.

``GET /_sandbox/smtp/received`` lists the messages: ``{mail_from, rcpt_tos, from, to, cc,
subject, content_type, body (the text/plain part), html (the text/html part), attachments
[{filename, content_type, size}], message_id, headers, received_at}`` — a multipart/alternative
mail has both ``body`` and ``html``. ``/_sandbox/smtp/attempts`` lists every DATA attempt,
failed ones included; ``/_sandbox/smtp/message-ids`` counts the messages per ``Message-ID``
(a count above 1 is a duplicate send). A fault for
target ``smtp`` applies at DATA: latency delays the reply, and a failure answers the fault's
``status`` as the SMTP reply code (e.g. 451 for a temporary failure, 554 for a permanent one).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from sandbox.faults import FaultBook
from sandbox.recorder import now_iso

_REPLY_TEXT = {4: "4.3.0 Temporary failure (sandbox fault)", 5: "5.7.1 Rejected (sandbox fault)"}


def _part(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    content: str = part.get_content()
    # The wire has CRLF line ends; readers compare against the text they meant to send.
    return content.replace("\r\n", "\n")


def parse_message(mail_from: str, rcpt_tos: list[str], raw: bytes) -> dict[str, Any]:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)  # policy.default always builds EmailMessage
    attachments = [
        {
            "filename": part.get_filename(),
            "content_type": part.get_content_type(),
            "size": len(part.get_payload(decode=True) or b""),
        }
        for part in message.iter_attachments()
    ]
    return {
        "mail_from": mail_from,
        "rcpt_tos": list(rcpt_tos),
        "from": message.get("from"),
        "to": message.get("to"),
        "cc": message.get("cc"),
        "subject": message.get("subject"),
        "content_type": message.get_content_type(),
        "body": _part(message, "plain"),
        "html": _part(message, "html"),
        "attachments": attachments,
        "message_id": message.get("message-id"),
        "headers": {name: str(value) for name, value in message.items()},
        "received_at": now_iso(),
    }


class Mailbox:
    """What the SMTP server accepted, and every attempt (read by the HTTP side, another thread)."""

    def __init__(self, faults: FaultBook) -> None:
        self.faults = faults
        self._messages: list[dict[str, Any]] = []
        self._attempts: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd hook name
        attempt = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "received_at": now_iso(),
        }
        decision = self.faults.decide("smtp", "")
        await asyncio.sleep(decision.latency_s)
        if decision.fail_status is not None:
            code = decision.fail_status
            with self._lock:
                self._attempts.append({**attempt, "outcome": "injected", "reply": code})
            return f"{code} {_REPLY_TEXT.get(code // 100, 'sandbox fault')}"
        raw = envelope.original_content or b""
        parsed = parse_message(envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        with self._lock:
            self._attempts.append({**attempt, "outcome": "accepted", "reply": 250})
            self._messages.append(parsed)
        return "250 OK: queued"

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages)

    def message_ids(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(str(m["message_id"]) for m in self._messages))

    def attempts(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._attempts)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._attempts.clear()


class SmtpServer:
    """aiosmtpd's controller: its own thread and event loop, started and stopped with the app."""

    def __init__(self, mailbox: Mailbox, host: str, port: int) -> None:
        self._controller = Controller(mailbox, hostname=host, port=port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
