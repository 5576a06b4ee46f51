"""One rendered message, shaped for each platform (pure): Block Kit, Adaptive Card, e-mail.

* Slack: a ``header`` block (150 chars), a ``section`` of mrkdwn (3,000 chars), a ``section``
  of up to 10 ``fields``, an ``actions`` block of URL buttons; ``text`` stays as the
  notification fallback (40,000 chars).
* Teams: ``{"type": "message", "attachments": [Adaptive Card 1.5]}`` with a ``FactSet`` and
  ``Action.OpenUrl``; the body is kept under 28 KB (:data:`TEAMS_MAX_BYTES`) by cutting the
  text, then the facts — a card that still does not fit is refused (fatal).
* E-mail: plain text and HTML alternatives of the same content.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from synapseops.errors import TargetRejected

SLACK_HEADER_CHARS = 150
SLACK_SECTION_CHARS = 3000
SLACK_FIELDS = 10
TEAMS_MAX_BYTES = 28 * 1024
TEAMS_CARD_VERSION = "1.5"


@dataclass(frozen=True)
class Action:
    label: str
    url: str
    style: str = "default"  # primary | danger | default


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    subject: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    actions: tuple[Action, ...] = ()
    link: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(message: Message) -> dict[str, Any]:
    """``chat.postMessage`` / incoming-webhook body (without ``channel``)."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(message.title or "-", SLACK_HEADER_CHARS)},
        }
    ]
    if message.text:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(message.text, SLACK_SECTION_CHARS)},
            }
        )
    if message.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _cut(f"*{name}*\n{value}", 2000)}
                    for name, value in message.fields[:SLACK_FIELDS]
                ],
            }
        )
    buttons = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": _cut(action.label, 75)},
            "url": action.url,
            **({"style": action.style} if action.style in ("primary", "danger") else {}),
        }
        for action in message.actions
    ]
    if message.link:
        buttons.append(
            {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": message.link}
        )
    if buttons:
        blocks.append({"type": "actions", "elements": buttons[:25]})
    payload: dict[str, Any] = {"text": _cut(f"{message.title}\n{message.text}", 40_000)}
    payload["blocks"] = blocks
    if message.metadata:
        payload["metadata"] = {
            "event_type": "synapseops_notification",
            "event_payload": message.metadata,
        }
    return payload


def _card(message: Message, text: str, facts: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": message.title or "-",
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        },
    ]
    if text:
        body.append({"type": "TextBlock", "text": text, "wrap": True})
    if facts:
        body.append({"type": "FactSet", "facts": [{"title": n, "value": v} for n, v in facts]})
    actions = [{"type": "Action.OpenUrl", "title": a.label, "url": a.url} for a in message.actions]
    if message.link:
        actions.append({"type": "Action.OpenUrl", "title": "Open", "url": message.link})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": TEAMS_CARD_VERSION,
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }


def teams_body(message: Message) -> bytes:
    """The Workflows webhook body, under :data:`TEAMS_MAX_BYTES` (raises TargetRejected)."""
    text, facts = message.text, message.fields
    for _ in range(12):
        raw = json.dumps(_card(message, text, facts), ensure_ascii=False).encode()
        if len(raw) < TEAMS_MAX_BYTES:
            return raw
        if len(text) > 200:
            text = _cut(text, len(text) // 2)
        elif facts:
            facts = facts[: len(facts) // 2]
        else:
            break
    raise TargetRejected("the Teams card does not fit in 28 KB even cut down", status=413)


def email_parts(message: Message) -> tuple[str, str, str]:
    """``(subject, plain text, HTML)``."""
    subject = _cut((message.subject or message.title or "-").replace("\n", " "), 250)
    lines = [message.title, "", message.text]
    lines += [f"{name}: {value}" for name, value in message.fields]
    lines += [f"{action.label}: {action.url}" for action in message.actions]
    if message.link:
        lines.append(f"Open: {message.link}")
    rows = "".join(
        f"<tr><th align='left'>{html.escape(n)}</th><td>{html.escape(v)}</td></tr>"
        for n, v in message.fields
    )
    links = "".join(
        f"<p><a href='{html.escape(a.url, quote=True)}'>{html.escape(a.label)}</a></p>"
        for a in message.actions
    )
    if message.link:
        links += f"<p><a href='{html.escape(message.link, quote=True)}'>Open</a></p>"
    body = html.escape(message.text).replace("\n", "<br>")
    page = (
        f"<html><body><h2>{html.escape(message.title)}</h2><p>{body}</p>"
        f"<table>{rows}</table>{links}</body></html>"
    )
    return subject, "\n".join(lines).strip() + "\n", page
